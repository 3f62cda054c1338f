"""The migrated schema is exactly the declared one, on SQLite and PostgreSQL; the writer serialises."""

from __future__ import annotations

import threading

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, insert, select

from mediamesh.catalog.schema import media, metadata
from mediamesh.catalog.times import now_utc
from mediamesh.context import Context


def _declared_elsewhere(name: str | None, type_: str, _: object) -> bool:
    """The name-search index is made by raw SQL in migration 0004 (FTS5 / a GIN expression index); the task
    engine's tables (PostgreSQL) are procrastinate's own schema (catalog/engine.py)."""
    return not (name or "").startswith(
        ("files_fts", "ix_files_path_words", "procrastinate_", "idx_procrastinate")
    )


def test_migrations_match_the_declared_schema(ctx: Context) -> None:
    with ctx.catalog.engine.connect() as conn:
        migration = MigrationContext.configure(conn, opts={"include_name": _declared_elsewhere})
        diff = compare_metadata(migration, metadata)
    assert diff == []


def test_migrate_twice_is_a_no_op(ctx: Context) -> None:
    ctx.catalog.migrate()
    ctx.catalog.migrate()


def test_concurrent_writers_never_hit_database_is_locked(ctx: Context) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(50):
                with ctx.catalog.write() as conn:
                    conn.execute(
                        insert(media).values(
                            id=f"{n:032x}{i:032x}", size=i, kind="video", first_seen=now_utc()
                        )
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with ctx.catalog.read() as conn:
        assert conn.execute(select(func.count()).select_from(media)).scalar_one() == 200


def test_sqlite_runs_in_wal_mode(sqlite_ctx: Context) -> None:
    with sqlite_ctx.catalog.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_head_revision_constant_matches_the_migrations() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from mediamesh.catalog.database import HEAD_REVISION, MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD_REVISION


def test_the_suite_cannot_reach_beyond_loopback() -> None:
    import socket

    import pytest

    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("nas.example", 445)
    with socket.socket() as s, pytest.raises(ConnectionRefusedError, match="loopback"):
        s.connect(("192.0.2.1", 445))  # TEST-NET-1: documentation only, and refused before any packet


def test_processes_the_suite_starts_cannot_reach_beyond_loopback() -> None:
    """A server or CLI a test starts is guarded too (tests/guard/sitecustomize.py on its PYTHONPATH)."""
    import subprocess
    import sys

    probe = (
        "import socket\n"
        "try:\n"
        "    socket.socket().connect(('192.0.2.1', 445))\n"
        "except ConnectionRefusedError as exc:\n"
        "    print('refused:', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=False, capture_output=True, text=True, timeout=60
    )
    assert "refused: tests may only connect to loopback" in out.stdout, out
