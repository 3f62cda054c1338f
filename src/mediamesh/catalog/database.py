"""Engine set-up, the single writer, and migrations applied on open."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url

from mediamesh.errors import ConfigurationError
from mediamesh.privatefs import create_private

MIGRATIONS = Path(__file__).parent / "migrations"
#: The newest revision in migrations/versions (a test checks they agree). Comparing it with the catalog's
#: saves importing Alembic on every CLI start when there is nothing to migrate.
HEAD_REVISION = "0014"

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # safe with WAL: a power cut loses at most the last transactions
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=60000",  # other processes (a CLI scan beside the server) wait, not fail
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-65536",
    "PRAGMA wal_autocheckpoint=10000",
)


#: The advisory lock (PostgreSQL) that one migrating process holds; any fixed number of our own.
MIGRATION_LOCK = 0x6D6D_0001
#: The advisory lock the leader holds (services/leader.py): one scheduler and monitor for all processes.
LEADER_LOCK = 0x6D6D_0002

_BUMP = text("UPDATE catalog_state SET value = value + 1 WHERE key = 'generation'")
_READ = text("SELECT value FROM catalog_state WHERE key = 'generation'")


class Catalog:
    """One catalog database. Reads may run on any thread; writes go through :meth:`write`, one at a time
    per process (and ``BEGIN IMMEDIATE`` across processes on SQLite), so scans never hit 'database is
    locked'."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self._write_lock = threading.RLock()
        #: Bumped after every write transaction of this process; with the shared counter in the catalog
        #: (bumped by every process) it makes :attr:`generation`, which caches of query results compare.
        self._local_generation = 0
        self._shared: tuple[float, int] = (0.0, 0)  # (read at, value)
        self._shared_lock = threading.Lock()
        self.engine = self._create_engine()
        #: Jobs that become due are handed to the task engine too (scale-out mode; catalog/engine.py).
        self.dispatch = False

    def _create_engine(self) -> Engine:
        if not self.is_sqlite:
            return create_engine(self.url, pool_pre_ping=True, pool_size=8, max_overflow=8)
        if self.url.database and self.url.database != ":memory:":
            path = Path(self.url.database)
            path.parent.mkdir(parents=True, exist_ok=True)
            # Empty and 0600 before SQLite opens it: SQLite gives its -wal and -shm files the same mode.
            create_private(path)
        engine = create_engine(
            self.url, connect_args={"check_same_thread": False, "timeout": 60}, pool_size=8, max_overflow=8
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            for pragma in _SQLITE_PRAGMAS:
                cur.execute(pragma)
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get("mediamesh_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection in a read transaction (a consistent snapshot)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self, bump: bool = True) -> Iterator[Connection]:
        """A connection in a write transaction, committed on success, rolled back on any exception.

        ``bump=False`` for writes that change no query result (a token's last use), so that cached
        counts stay valid."""
        with self._write_lock, self.engine.connect() as raw:
            conn = raw.execution_options(mediamesh_write=True)
            try:
                with conn.begin():
                    yield conn
                    if bump:  # last, so that the row lock (PostgreSQL) is held only until the commit
                        conn.execute(_BUMP)
            finally:
                if bump:
                    self._local_generation += 1

    #: How long the shared generation read from the catalog is trusted (writes by other processes are
    #: seen this late at most).
    SHARED_GENERATION_TTL = 1.0

    @property
    def generation(self) -> tuple[int, int]:
        """Changes after every write transaction, of this process at once and of others within a second."""
        now = time.monotonic()
        with self._shared_lock:
            at, value = self._shared
        if now - at >= self.SHARED_GENERATION_TTL:
            try:
                with self.engine.connect() as conn:
                    value = int(conn.execute(_READ).scalar_one_or_none() or 0)
            except Exception:  # a catalog being migrated or closed: this process's own count will do
                value = -1
            with self._shared_lock:
                self._shared = (now, value)
        return (self._local_generation, value)

    def migrate(self) -> None:
        """Bring the schema to the newest revision (cheap when it is already there). On PostgreSQL, under
        an advisory lock: of several processes starting at once (a server and its workers), the first
        migrates and the others wait, then find nothing left to do. It also installs the task engine's
        tables there (catalog/engine.py)."""
        if self.current_revision() == HEAD_REVISION and (self.is_sqlite or self._engine_installed()):
            return
        from alembic import command
        from alembic.config import Config

        from mediamesh.catalog import engine as task_engine

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self._write_lock, self.engine.begin() as conn:
            if not self.is_sqlite:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            try:
                command.upgrade(cfg, "head")
                if not self.is_sqlite:
                    task_engine.install(conn)
            except Exception as exc:  # pragma: no cover - reported with its cause
                raise ConfigurationError(f"could not migrate the catalog at {self.url!r}: {exc}") from exc

    def _engine_installed(self) -> bool:
        with self.engine.connect() as conn:
            return inspect(conn).has_table("procrastinate_jobs")

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()

    def close(self) -> None:
        self.engine.dispose()
