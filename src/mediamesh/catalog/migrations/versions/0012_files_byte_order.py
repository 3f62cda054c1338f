"""files: paths and keys compared by their bytes on PostgreSQL (COLLATE "C")

A folder's rows are found as the key range ``[folder + "/", folder + "0")``, which holds exactly the
folder's descendants only when text sorts by its bytes, as it does in SQLite. A PostgreSQL database made
with a language's collation (en_US, or ICU) sorts otherwise: "A/sub" falls between "a/" and "a0", and a
scan of the folder "a" would have taken A/sub's files for its own (and marked them missing). Equality is
not changed by this; only the order, which becomes SQLite's. The word index of paths is made again so
that it still tells letters by the database's collation.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("path", "dir_key", "name_key")
#: The words of a path (migration 0004), its letters told by the database's own collation: under "C",
#: [:alnum:] knows ASCII only and "Élodie" would be indexed as "lodie". Also in catalog/search.py.
PG_WORDS = "to_tsvector('simple', regexp_replace(path COLLATE \"default\", '[^[:alnum:]]+', ' ', 'g'))"
OLD_WORDS = "to_tsvector('simple', regexp_replace(path, '[^[:alnum:]]+', ' ', 'g'))"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite compares text by its bytes already
    op.execute("DROP INDEX ix_files_path_words")
    for column in COLUMNS:  # the indexes on these columns are rebuilt with them
        op.alter_column("files", column, type_=sa.Text(collation="C"), existing_nullable=False)
    op.execute(f"CREATE INDEX ix_files_path_words ON files USING gin ({PG_WORDS})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX ix_files_path_words")
    for column in COLUMNS:
        op.alter_column("files", column, type_=sa.Text(), existing_nullable=False)
    op.execute(f"CREATE INDEX ix_files_path_words ON files USING gin ({OLD_WORDS})")
