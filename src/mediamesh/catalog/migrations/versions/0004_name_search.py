"""name search: a full-text index over every location's path

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

SQLite: an FTS5 table with external content (the ``files`` table), kept current by triggers, so a word or
a word prefix is found among a million paths in well under a millisecond. PostgreSQL: a GIN index over
the words of the path (``PG_WORDS``), which needs no extension.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The words of a path for PostgreSQL: its parser would keep a whole path as one "file" token.
PG_WORDS = "to_tsvector('simple', regexp_replace(path, '[^[:alnum:]]+', ' ', 'g'))"

SQLITE = [
    "CREATE VIRTUAL TABLE files_fts USING fts5("
    "path, content='files', content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER files_fts_insert AFTER INSERT ON files BEGIN"
    " INSERT INTO files_fts(rowid, path) VALUES (new.id, new.path); END",
    "CREATE TRIGGER files_fts_delete AFTER DELETE ON files BEGIN"
    " INSERT INTO files_fts(files_fts, rowid, path) VALUES ('delete', old.id, old.path); END",
    # Only when the path really changes: a rescan sets every path it sees, mostly to the same value.
    "CREATE TRIGGER files_fts_update AFTER UPDATE OF path ON files WHEN old.path IS NOT new.path BEGIN"
    " INSERT INTO files_fts(files_fts, rowid, path) VALUES ('delete', old.id, old.path);"
    " INSERT INTO files_fts(rowid, path) VALUES (new.id, new.path); END",
    "INSERT INTO files_fts(files_fts) VALUES ('rebuild')",
    # The index's words, to turn a prefix (interv*) into the few words it stands for (see services/media.py).
    "CREATE VIRTUAL TABLE files_fts_vocab USING fts5vocab(files_fts, 'row')",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE:
            op.execute(statement)
    else:
        op.execute(f"CREATE INDEX ix_files_path_words ON files USING gin ({PG_WORDS})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("files_fts_insert", "files_fts_delete", "files_fts_update"):
            op.execute(f"DROP TRIGGER {name}")
        op.execute("DROP TABLE files_fts_vocab")
        op.execute("DROP TABLE files_fts")
    else:
        op.execute("DROP INDEX ix_files_path_words")
