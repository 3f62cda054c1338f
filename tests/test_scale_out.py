"""Scale-out mode against the real PostgreSQL: jobs on procrastinate, scan workers per source, a worker
killed mid-scan, path mapping, the leader lock, migrations run once, and ``catalog copy``."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.engine import make_url

from mediamesh.catalog import Catalog
from mediamesh.catalog import jobs as job_table
from mediamesh.catalog.database import HEAD_REVISION
from mediamesh.catalog.schema import files, media, sources
from mediamesh.context import Context
from mediamesh.errors import Conflict, InvalidInput
from mediamesh.services import jobs as job_svc
from mediamesh.services import sources as source_svc
from mediamesh.services.catalog_copy import copy_catalog
from mediamesh.services.engine import EngineWorker, server_queues
from mediamesh.services.jobs import JobRunner
from mediamesh.services.leader import Leadership
from mediamesh.services.scan_runner import ScanQueue
from mediamesh.services.scans import HANDLERS, run_scan
from tests.conftest import PG_ADMIN_URL, make_settings, write

LEASE = 4.0


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """An empty database of its own (the task engine's tables and workers are per test)."""
    name = f"mediamesh_scale_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _ctx(tmp_path: Path, url: str, worker_name: str | None = None, **overrides: Any) -> Context:
    overrides.setdefault("local_roots", str(tmp_path))
    settings = make_settings(tmp_path, url, job_lease_seconds=LEASE, thumbnails="off", **overrides)
    return Context(settings, worker_name=worker_name)


def _tree(root: Path, count: int, prefix: str = "clip") -> list[Path]:
    return [
        write(root / f"d{n // 200:03d}" / f"{prefix}{n:05d}.mp4", f"{prefix} {n}\n".encode())
        for n in range(count)
    ]


def _wait(what: Callable[[], Any], timeout: float = 60, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got:
            return got
        assert time.monotonic() < deadline, message or f"timed out waiting for {what}"
        time.sleep(0.1)


def _job(ctx: Context, job_id: int) -> dict[str, Any]:
    return job_svc.get_job(ctx, job_id)


def _engine_tasks(ctx: Context) -> list[tuple[str, str, int]]:
    with ctx.catalog.read() as conn:
        rows = conn.execute(
            text("SELECT queue_name, status, (args->>'job_id')::int FROM procrastinate_jobs ORDER BY id")
        ).all()
    return [(r[0], str(r[1]), r[2]) for r in rows]


def _file_rows(ctx: Context) -> list[tuple[Any, ...]]:
    """What a scan decides about each file (not when it last looked)."""
    with ctx.catalog.read() as conn:
        return sorted(
            tuple(r)
            for r in conn.execute(
                select(files.c.source_id, files.c.path, files.c.media_id, files.c.size, files.c.state)
            )
        )


# -- the engine in one process --------------------------------------------------------------------------
def test_jobs_go_to_their_source_queue_and_run_on_the_engine(tmp_path: Path, fresh_pg: str) -> None:
    _tree(tmp_path / "lib", 30)
    ctx = _ctx(tmp_path, fresh_pg)
    try:
        assert ctx.catalog.dispatch, "PostgreSQL: the task engine is the default"
        source = source_svc.add_source(ctx, "lib", str(tmp_path / "lib"))
        job_id = job_table.enqueue(
            ctx.catalog, "scan", {"path": ""}, key=f"scan:{source['id']}", source_id=source["id"]
        )
        again = job_table.enqueue(
            ctx.catalog, "scan", {"path": ""}, key=f"scan:{source['id']}", source_id=source["id"]
        )
        assert again == job_id
        # One task, in the same transaction as the job, on the source's own queue.
        assert _engine_tasks(ctx) == [(f"source-{source['id']}", "todo", job_id)]

        runner = JobRunner(ctx, HANDLERS, [], kinds=sorted(HANDLERS), name="test", role="server")
        engine = EngineWorker(ctx, runner, lambda: server_queues(ctx), concurrency=2, name="server@test")
        runner.start()
        engine.start()
        try:
            _wait(lambda: _job(ctx, job_id)["state"] == "completed", message=str(_job(ctx, job_id)))
            _wait(lambda: job_svc.list_jobs(ctx, state="completed", kind="extract"))
        finally:
            engine.stop()
            runner.stop()
        assert len(_file_rows(ctx)) == 30
        assert not [t for t in _engine_tasks(ctx) if t[1] in ("todo", "doing")]
    finally:
        ctx.close()


def test_a_job_the_engine_lost_is_handed_over_again(tmp_path: Path, fresh_pg: str) -> None:
    ctx = _ctx(tmp_path, fresh_pg)
    try:
        (tmp_path / "lib").mkdir()
        source = source_svc.add_source(ctx, "lib", str(tmp_path / "lib"))
        job_id = job_table.enqueue(
            ctx.catalog, "scan", {}, key=f"scan:{source['id']}", source_id=source["id"]
        )
        with ctx.catalog.write(bump=False) as conn:  # as if queued before the engine was there
            conn.execute(text("DELETE FROM procrastinate_jobs"))
        assert job_table.dispatch_orphans(ctx.catalog) == 1
        assert _engine_tasks(ctx) == [(f"source-{source['id']}", "todo", job_id)]
        assert job_table.dispatch_orphans(ctx.catalog) == 0, "known now: not handed over twice"
    finally:
        ctx.close()


# -- worker processes -----------------------------------------------------------------------------------
def _env(tmp_path: Path, url: str, **more: str) -> dict[str, str]:
    return {
        **os.environ,
        "MEDIAMESH_DATA_DIR": str(tmp_path / "data"),
        "MEDIAMESH_DATABASE_URL": url,
        "MEDIAMESH_SETTLE_SECONDS": "0",
        "MEDIAMESH_THUMBNAILS": "off",
        "MEDIAMESH_JOB_LEASE_SECONDS": str(LEASE),
        "MEDIAMESH_LOCAL_ROOTS": str(tmp_path),
        **more,
    }


def _worker(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mediamesh", "worker", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _live(ctx: Context, role: str = "worker") -> list[dict[str, Any]]:
    return [w for w in job_svc.list_workers(ctx)["workers"] if w["role"] == role]


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        output, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    return output or ""


def test_a_worker_serves_its_source_and_the_server_leaves_it(tmp_path: Path, fresh_pg: str) -> None:
    _tree(tmp_path / "nas", 40)
    _tree(tmp_path / "laptop", 5, prefix="photo")
    ctx = _ctx(tmp_path, fresh_pg)
    env = _env(tmp_path, fresh_pg)
    try:
        nas = source_svc.add_source(ctx, "nas", str(tmp_path / "nas"))
        laptop = source_svc.add_source(ctx, "laptop", str(tmp_path / "laptop"))
        assert server_queues(ctx) == ["mediamesh", f"source-{nas['id']}", f"source-{laptop['id']}"]
        proc = _worker(env, "--source", "nas", "--name", "nas-box", "--concurrency", "1")
        try:
            _wait(lambda: _live(ctx), message="the worker never showed up")
            listed = job_svc.list_workers(ctx)
            assert listed["engine"] == "procrastinate"
            assert [(w["name"], w["sources"]) for w in listed["workers"]] == [("nas-box", ["nas"])]
            assert listed["sources"] == {
                "laptop": {"served_by": ["server"]},
                "nas": {"served_by": ["nas-box"]},
            }
            # A CLI scan leaves enrichment to a runner only if it serves the source.
            assert job_svc.server_runs(ctx, "extract", nas["id"])
            assert not job_svc.server_runs(ctx, "extract", laptop["id"])
            # The server stops taking the NAS's jobs: only the worker does.
            assert server_queues(ctx) == ["mediamesh", f"source-{laptop['id']}"]
            job_id = ScanQueue(ctx).start("nas", trigger="api", wait=0)["job"]
            _wait(lambda: _job(ctx, job_id)["state"] == "completed", message=str(_job(ctx, job_id)))
            # It ran in the worker, not in this process (which runs no engine at all).
            holder = _job(ctx, job_id)
            assert holder["result"]["status"] == "completed"
            assert sum(1 for r in _file_rows(ctx) if r[0] == nas["id"]) == 40
            laptop_job = ScanQueue(ctx).start("laptop", trigger="api", wait=0)["job"]
            time.sleep(2 * LEASE)
            assert _job(ctx, laptop_job)["state"] == "queued", "a --source worker takes no other source"
        finally:
            output = _stop(proc)
        assert "serving nas" in output, output
        _wait(lambda: not _live(ctx), message="a stopped worker leaves the list")
        assert server_queues(ctx) == ["mediamesh", f"source-{nas['id']}", f"source-{laptop['id']}"]
    finally:
        ctx.close()


def test_a_worker_killed_mid_scan_is_replaced_and_nothing_is_lost_or_doubled(
    tmp_path: Path, fresh_pg: str
) -> None:
    paths = _tree(tmp_path / "nas", 12_000)
    ctx = _ctx(tmp_path, fresh_pg)
    env = _env(tmp_path, fresh_pg, MEDIAMESH_COMMIT_BATCH="300", MEDIAMESH_HASH_WORKERS="1")
    procs: list[subprocess.Popen[str]] = []
    try:
        nas = source_svc.add_source(ctx, "nas", str(tmp_path / "nas"))
        procs = [
            _worker(env, "--source", "nas", "--name", f"nas-{i}", "--concurrency", "1") for i in range(2)
        ]
        _wait(lambda: len(_live(ctx)) == 2, message="both workers")
        job_id = ScanQueue(ctx).start("nas", trigger="api", wait=0)["job"]

        def holder() -> int | None:
            job = _job(ctx, job_id)
            files_seen = (job["progress"] or {}).get("files_seen", 0)
            if job["state"] == "running" and files_seen >= 1500 and job["lease_owner"]:
                return int(job["lease_owner"].split(":")[1])
            return None

        victim = _wait(holder, message="the scan never got going")
        killed = next(p for p in procs if p.pid == victim)
        killed.kill()  # kill -9: no goodbye, the lease and the engine's heartbeat just stop
        killed.wait(10)
        _wait(
            lambda: _job(ctx, job_id)["state"] == "completed",
            timeout=180,
            message=str(_job(ctx, job_id)),
        )
        survivor = next(p for p in procs if p is not killed)
        assert survivor.poll() is None
        done = _job(ctx, job_id)
        assert done["attempts"] == 2 and done["result"]["status"] == "completed", done
    finally:
        for proc in procs:
            _stop(proc)
    try:
        rows = _file_rows(ctx)
        with ctx.catalog.read() as conn:
            media_count = conn.execute(select(media.c.id)).all()
        assert len(rows) == len({r[1] for r in rows}) == len(paths), "no row lost, none twice"
        # The same as an undisturbed scan of the same tree by the embedded mode.
        quiet = _ctx(tmp_path / "quiet", f"sqlite:///{tmp_path / 'quiet.db'}", local_roots=str(tmp_path))
        try:
            source_svc.add_source(quiet, "nas", str(tmp_path / "nas"))
            assert run_scan(quiet, "nas")["status"] == "completed"
            undisturbed = [(nas["id"], *r[1:]) for r in _file_rows(quiet)]
        finally:
            quiet.close()
        assert rows == undisturbed
        assert len(media_count) == len(paths)
    finally:
        ctx.close()


# -- path mapping ---------------------------------------------------------------------------------------
def test_a_worker_reads_the_source_at_its_own_path_and_changes_nothing(tmp_path: Path, fresh_pg: str) -> None:
    share = tmp_path / "share"
    _tree(share, 50)
    nas_view = tmp_path / "volume1" / "video"
    nas_view.mkdir(parents=True)
    bound = subprocess.run(["mount", "--bind", str(share), str(nas_view)], check=False, capture_output=True)
    if bound.returncode != 0:  # not root: the same folder under another path all the same
        nas_view.rmdir()
        nas_view.symlink_to(share)
    ctx = _ctx(tmp_path, fresh_pg)
    # The worker's own roots: it may read its view of the share (or, without a bind mount, the link's target).
    env = _env(tmp_path, fresh_pg, MEDIAMESH_LOCAL_ROOTS=f"{tmp_path / 'volume1'},{share}")
    try:
        source_svc.add_source(ctx, "video", str(share))
        assert run_scan(ctx, "video")["status"] == "completed"  # by the server, at the server's path
        before = _file_rows(ctx)
        with pytest.raises(InvalidInput):
            source_svc.update_source(ctx, "video", worker_paths={"nas": "volume1/video"})
        updated = source_svc.update_source(ctx, "video", worker_paths={"nas": str(nas_view)})
        assert updated["worker_paths"] == {"nas": str(nas_view)}
        proc = _worker(env, "--source", "video", "--name", "nas")
        try:
            job_id = ScanQueue(ctx).start("video", trigger="api", wait=0)["job"]
            _wait(lambda: _job(ctx, job_id)["state"] == "completed", message=str(_job(ctx, job_id)))
        finally:
            _stop(proc)
        scan = ctx.catalog.read
        with scan() as conn:
            row = conn.execute(select(sources.c.options).where(sources.c.name == "video")).scalar_one()
        assert row["worker_identities"]["nas"]["_path"] == str(nas_view)  # recorded at its first use
        summary = job_svc.get_job(ctx, job_id)["result"]
        from mediamesh.services.scans import get_scan

        rescan = get_scan(ctx, summary["scan_id"])
        assert (rescan["files_new"], rescan["files_changed"], rescan["files_missing"]) == (0, 0, 0), rescan
        assert rescan["bytes_read"] == 0, "a rescan at the worker's path reads nothing"
        assert _file_rows(ctx) == before
    finally:
        ctx.close()
        subprocess.run(["umount", str(nas_view)], check=False, capture_output=True)


# -- leader, migrations, caches -------------------------------------------------------------------------
class _Duty:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def start(self) -> None:
        self.log.append(f"{self.name} start")

    def stop(self) -> None:
        self.log.append(f"{self.name} stop")


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_one_leader_at_a_time_and_a_standby_takes_over(tmp_path: Path, fresh_pg: str, kind: str) -> None:
    url = fresh_pg if kind == "postgresql" else f"sqlite:///{tmp_path / 'catalog.db'}"
    catalogs = [Catalog(url), Catalog(url)]
    catalogs[0].migrate()
    log: list[str] = []
    first = Leadership(catalogs[0], lambda: [_Duty(log, "a")], interval=0.2)
    second = Leadership(catalogs[1], lambda: [_Duty(log, "b")], interval=0.2)
    try:
        first.start()
        second.start()
        time.sleep(1)
        assert first.leading.is_set() and not second.leading.is_set()
        assert log == ["a start"]
        first.stop()  # or its process dies: the lock goes with its connection (or file)
        _wait(second.leading.is_set, timeout=10)
        assert log == ["a start", "a stop", "b start"]
    finally:
        second.stop()
        first.stop()
        for c in catalogs:
            c.close()


def test_a_leader_that_loses_its_connection_steps_down(tmp_path: Path, fresh_pg: str) -> None:
    catalog = Catalog(fresh_pg)
    catalog.migrate()
    log: list[str] = []
    leader = Leadership(catalog, lambda: [_Duty(log, "a")], interval=0.2)
    try:
        leader.start()
        assert leader.leading.is_set()
        conn = leader.lock._conn
        assert conn is not None
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        conn.commit()
        admin = create_engine(fresh_pg)
        with admin.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        admin.dispose()
        _wait(lambda: log[-2:] == ["a stop", "a start"], timeout=10, message=str(log))
        assert leader.leading.is_set(), "it stepped down, then led again on a new connection"
    finally:
        leader.stop()
        catalog.close()


def test_migrations_run_once_when_processes_start_together(fresh_pg: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        catalog = Catalog(fresh_pg)
        try:
            catalog.migrate()
        except BaseException as exc:
            errors.append(exc)
        finally:
            catalog.close()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    catalog = Catalog(fresh_pg)
    try:
        assert catalog.current_revision() == HEAD_REVISION
        with catalog.read() as conn:
            assert conn.execute(text("SELECT count(*) FROM procrastinate_jobs")).scalar() == 0
    finally:
        catalog.close()


def test_caches_see_writes_of_other_processes_on_postgresql(tmp_path: Path, fresh_pg: str) -> None:
    one, two = _ctx(tmp_path / "1", fresh_pg), _ctx(tmp_path / "2", fresh_pg)
    try:
        two.catalog.SHARED_GENERATION_TTL = 0.0
        before = two.catalog.generation
        with one.catalog.write() as conn:
            conn.execute(update(sources).values(updated_at=sources.c.updated_at))
        assert two.catalog.generation != before
    finally:
        one.close()
        two.close()


# -- catalog copy ---------------------------------------------------------------------------------------
def _dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    catalog = Catalog(url)
    try:
        with catalog.read() as conn:
            return {
                "files": sorted(
                    tuple(r) for r in conn.execute(select(files.c.path, files.c.media_id, files.c.size))
                ),
                "media": sorted(
                    tuple(r) for r in conn.execute(select(media.c.id, media.c.size, media.c.kind))
                ),
                "sources": [
                    tuple(r) for r in conn.execute(select(sources.c.id, sources.c.name, sources.c.location))
                ],
            }
    finally:
        catalog.close()


def test_catalog_copy_to_postgresql_is_verified_idempotent_and_resumable(
    tmp_path: Path, fresh_pg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mediamesh.services import catalog_copy

    _tree(tmp_path / "lib", 700)
    write(tmp_path / "lib" / "Ünïcode ✓" / "A.mp4", b"same")
    write(tmp_path / "lib" / "a" / "copy.mp4", b"same")
    sqlite_url = f"sqlite:///{tmp_path / 'catalog.db'}"
    ctx = _ctx(tmp_path, sqlite_url)
    try:
        source_svc.add_source(ctx, "lib", str(tmp_path / "lib"))
        assert run_scan(ctx, "lib")["status"] == "completed"
        monkeypatch.setattr(catalog_copy, "BATCH", 100)
        stopped: list[int] = []

        def stop_midway(table: str, done: int, total: int) -> None:
            if table == "files" and done >= 300 and not stopped:
                stopped.append(done)
                raise KeyboardInterrupt  # Ctrl-C half-way through a table

        with pytest.raises(KeyboardInterrupt):
            copy_catalog(ctx.catalog, fresh_pg, stop_midway)
        resumed = copy_catalog(ctx.catalog, fresh_pg)
        by_table = {t["table"]: t for t in resumed["tables"]}
        assert resumed["verified"]
        assert by_table["files"]["already_there"] == stopped[0]
        assert by_table["files"]["copied"] == by_table["files"]["rows"] - stopped[0] == 702 - stopped[0]
        again = copy_catalog(ctx.catalog, fresh_pg)
        assert again["verified"] and again["copied"] == 0, "nothing written over a complete copy"
        assert _dump(fresh_pg) == _dump(sqlite_url)
    finally:
        ctx.close()
    # The copy is a working catalog: new rows get new ids after the copied ones.
    pg = _ctx(tmp_path / "pg", fresh_pg, local_roots=str(tmp_path))
    try:
        (tmp_path / "more").mkdir()
        added = source_svc.add_source(pg, "more", str(tmp_path / "more"))
        assert added["id"] == 2
        with pg.catalog.write() as conn:  # a row the original does not have: the next copy must say so
            conn.execute(update(files).where(files.c.path == "a/copy.mp4").values(size=1))
    finally:
        pg.close()
    ctx = _ctx(tmp_path, sqlite_url)
    try:
        with pytest.raises(Conflict, match="differs"):
            copy_catalog(ctx.catalog, fresh_pg)
        with pytest.raises(InvalidInput):
            copy_catalog(ctx.catalog, sqlite_url)
    finally:
        ctx.close()


def test_cli_worker_and_copy_refuse_bad_input(tmp_path: Path) -> None:
    env = {**os.environ, "MEDIAMESH_DATA_DIR": str(tmp_path / "data")}
    embedded = subprocess.run(
        [sys.executable, "-m", "mediamesh", "worker"],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert embedded.returncode == 2 and "PostgreSQL" in embedded.stderr + embedded.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "mediamesh", "catalog", "copy", "--to", "mysql://x/y", "--json"],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "postgresql" in bad.stderr + bad.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "mediamesh", "workers", "--json"],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["engine"] == "embedded"


# -- the server in the scale-out mode -------------------------------------------------------------------
def test_a_server_on_postgresql_leads_runs_scans_on_the_engine_and_shows_its_workers(
    tmp_path: Path, fresh_pg: str
) -> None:
    from fastapi.testclient import TestClient

    from mediamesh.server import create_app
    from mediamesh.services import tokens as token_svc

    _tree(tmp_path / "lib", 25)
    settings = make_settings(
        tmp_path, fresh_pg, job_lease_seconds=LEASE, thumbnails="off", local_roots=str(tmp_path)
    )
    app = create_app(settings)
    with TestClient(app, client=("127.0.0.1", 40000)) as client:
        ctx = app.state.ctx
        headers = {"Authorization": f"Bearer {token_svc.create_token(ctx, 'admin', 'admin')[1]}"}
        assert app.state.leadership.leading.is_set(), "a lone server leads"
        assert (
            client.post(
                "/api/v1/sources", json={"name": "lib", "location": str(tmp_path / "lib")}, headers=headers
            ).status_code
            == 201
        )
        started = client.post("/api/v1/sources/lib/scans", headers=headers).json()
        _wait(lambda: _job(ctx, started["job"])["state"] == "completed", message=str(started))
        writer = {"Authorization": f"Bearer {token_svc.create_token(ctx, 'w', 'write')[1]}"}
        refused = client.patch("/api/v1/sources/lib", json={"worker_paths": {"nas": "/"}}, headers=writer)
        assert refused.status_code == 403, "where a worker reads is an admin's choice, as a local folder is"
        bad = client.patch("/api/v1/sources/lib", json={"worker_paths": {"-x": "/v"}}, headers=headers)
        assert bad.status_code == 422 and "worker name" in bad.json()["error"]["message"]
        workers = client.get("/api/v1/workers", headers=headers).json()
        assert workers["engine"] == "procrastinate"
        assert [(w["role"], w["sources"]) for w in workers["workers"]] == [("server", None)]
        assert workers["sources"] == {"lib": {"served_by": ["server"]}}
        from tests.test_ui import sign_in

        sign_in(client, ctx, "read")
        page = client.get("/")
        assert page.status_code == 200 and 'data-worker="' in page.text and "every source" in page.text
        assert len(_file_rows(ctx)) == 25
    assert not app.state.leadership.leading.is_set(), "stopping lets the lock go"


def test_the_embedded_server_says_so(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from mediamesh.server import create_app
    from mediamesh.services import tokens as token_svc

    app = create_app(make_settings(tmp_path))
    with TestClient(app, client=("127.0.0.1", 40000)) as client:
        headers = {"Authorization": f"Bearer {token_svc.create_token(app.state.ctx, 'r', 'read')[1]}"}
        workers = client.get("/api/v1/workers", headers=headers).json()
        assert workers["engine"] == "embedded"
        assert [w["role"] for w in workers["workers"]] == ["server"]
        from tests.test_ui import sign_in

        sign_in(client, app.state.ctx, "read")
        page = client.get("/")
        assert page.status_code == 200 and "Sources" in page.text and "data-worker" not in page.text
