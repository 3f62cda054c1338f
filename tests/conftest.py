"""Shared fixtures: a catalog on SQLite and on a throw-away PostgreSQL database, and real file trees."""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from mediamesh.catalog import Catalog
from mediamesh.catalog.schema import metadata
from mediamesh.config import Settings
from mediamesh.context import Context
from tests.guard import loopback_guard

#: The tests' file trees live in the temporary folder: local sources may be there (servers that the tests
#: start inherit it). tests/test_security_*.py check the defaults and the refusals themselves.
TEST_ROOTS = os.path.realpath(tempfile.gettempdir())
os.environ.setdefault("MEDIAMESH_LOCAL_ROOTS", TEST_ROOTS)
#: Starlette's TestClient calls the server "testserver": a name like any other, so it must be allowed.
os.environ.setdefault("MEDIAMESH_ALLOWED_HOSTS", "testserver")
#: Discovery multicasts onto the network it runs in: only inside the tests' own namespaces (test_discovery.py).
os.environ.setdefault("MEDIAMESH_DISCOVERY", "off")


@pytest.fixture(autouse=True, scope="session")
def only_loopback() -> Iterator[None]:
    """Tests talk only to this machine: a connection or a name look-up for anything but loopback fails at
    once, in the test runner and in every Python process a test starts (tests/guard/loopback_guard.py)."""
    loopback_guard.install()
    yield
    loopback_guard.uninstall()


def _pg_admin_url() -> str:
    """MEDIAMESH_TEST_PG_URL, else what scripts/ensure-services.sh found or started (.test-pg-url), else
    the dev machines' server."""
    if "MEDIAMESH_TEST_PG_URL" in os.environ:
        return os.environ["MEDIAMESH_TEST_PG_URL"]
    found = Path(__file__).resolve().parent.parent / ".test-pg-url"
    if found.is_file() and found.read_text().strip():
        return found.read_text().strip()
    return "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


PG_ADMIN_URL = _pg_admin_url()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL database created for this test run and dropped after it."""
    name = f"mediamesh_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            # An ICU collation (en-US), as many installations have: text does not sort by its bytes there
            # ("A/x" falls between "a/" and "a0"), so a range that assumes byte order fails here too.
            conn.execute(
                text(
                    f"CREATE DATABASE \"{name}\" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
                    " LOCALE 'C.UTF-8'"
                )
            )
    except Exception as exc:  # the suite must run on PostgreSQL too: say so rather than skip
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not usable ({exc}); run scripts/ensure-services.sh")
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    Catalog(url).migrate()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_pg(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        names = [t.name for t in metadata.sorted_tables]
        if inspect(conn).has_table("procrastinate_jobs"):  # the task engine's queue (scale-out mode)
            names += ["procrastinate_jobs", "procrastinate_workers", "procrastinate_periodic_defers"]
        conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    url: str = request.getfixturevalue("pg_url")
    _truncate_pg(url)
    return url


def make_settings(tmp_path: Path, db_url: str | None = None, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "settle_seconds": 0,
        "database_url": db_url,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def ctx(tmp_path: Path, db_url: str) -> Iterator[Context]:
    context = Context(make_settings(tmp_path, db_url))
    yield context
    context.close()


@pytest.fixture
def sqlite_ctx(tmp_path: Path) -> Iterator[Context]:
    context = Context(make_settings(tmp_path))
    yield context
    context.close()


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "library"
    root.mkdir()
    return root


def write(path: Path, data: bytes | int, mtime_offset: float = -3600) -> Path:
    """Write a file (bytes, or that many random bytes) with an mtime in the past (settled)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(data) if isinstance(data, int) else data)
    stamp = path.stat().st_mtime + mtime_offset
    os.utime(path, (stamp, stamp))
    return path


def b3sum(*paths: Path) -> dict[Path, str]:
    """What the real b3sum prints for each path."""
    result = subprocess.run(
        ["b3sum", "--no-names", *map(str, paths)], capture_output=True, text=True, check=True
    )
    return dict(zip(paths, result.stdout.split(), strict=True))


@pytest.fixture(scope="session")
def samba(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A private smbd on a free port of 127.0.0.1, for the whole session."""
    from tests.servers.samba import SambaServer

    server = SambaServer(tmp_path_factory.mktemp("samba")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sshd() -> Iterator[object]:
    """A private OpenSSH server on a free port of 127.0.0.1 (SFTP, and b3sum for its user), for the session."""
    import shutil

    from tests.servers.openssh import SshServer

    server = SshServer().start()
    yield server
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def ganesha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A private nfs-ganesha (NFSv4) on a free port of 127.0.0.1, for the whole session."""
    from tests.servers.ganesha import GaneshaServer

    server = GaneshaServer(tmp_path_factory.mktemp("ganesha")).start()
    yield server
    server.stop()
