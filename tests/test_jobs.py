"""Durable jobs: atomic claims, keys, leases renewed by a timer, retries, cancellation, restart after
kill -9; and one connection manager whose backends follow every change of a source."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from mediamesh.catalog import Catalog
from mediamesh.catalog import jobs as job_table
from mediamesh.catalog.schema import jobs
from mediamesh.catalog.times import now_utc
from mediamesh.context import Context
from mediamesh.services import content as content_svc
from mediamesh.services import sources as source_svc
from mediamesh.services.jobs import Handler, JobControl, JobRunner, Lane, RetryLater
from mediamesh.services.lifecycle import SourceManager
from mediamesh.services.scans import run_scan
from tests.conftest import b3sum, write
from tests.servers.samba import PASSWORD, SambaServer


def _state(ctx: Context, job_id: int) -> Any:
    with ctx.catalog.read() as conn:
        return conn.execute(select(jobs).where(jobs.c.id == job_id)).one()


def test_each_job_is_claimed_once_by_competing_runners(ctx: Context) -> None:
    """Four runners, each with its own catalog connection pool (as four processes), race for 40 jobs."""
    ids = {job_table.enqueue(ctx.catalog, "noop", {"n": n}) for n in range(40)}
    taken: list[tuple[str, int]] = []
    lock = threading.Lock()

    def runner(n: int) -> None:
        catalog = Catalog(str(ctx.catalog.url.render_as_string(hide_password=False)))
        owner = f"elsewhere:{n}:x"  # not this host: only the lease counts
        try:
            while (job := job_table.claim(catalog, owner, ["noop"])) is not None:
                with lock:
                    taken.append((owner, job.id))
                job_table.finish(catalog, owner, job.id, "completed")
        finally:
            catalog.close()

    threads = [threading.Thread(target=runner, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    claimed = [job_id for _, job_id in taken]
    assert sorted(claimed) == sorted(ids), "every job once, none twice"
    assert all(_state(ctx, i).state == "completed" for i in ids)


def test_one_waiting_job_per_key_and_never_two_running(ctx: Context) -> None:
    first = job_table.enqueue(ctx.catalog, "scan", key="scan:1")
    assert job_table.enqueue(ctx.catalog, "scan", key="scan:1") == first  # the waiting one is kept
    with pytest.raises(job_table.AlreadyQueued):
        job_table.enqueue(ctx.catalog, "scan", key="scan:1", exclusive=True)
    claimed = job_table.claim(ctx.catalog, "elsewhere:1:a", ["scan"])
    assert claimed is not None and claimed.id == first
    second = job_table.enqueue(ctx.catalog, "scan", key="scan:1")  # may wait while the first runs
    assert second != first
    assert job_table.claim(ctx.catalog, "elsewhere:2:b", ["scan"]) is None  # its key is busy
    job_table.finish(ctx.catalog, "elsewhere:1:a", first, "completed")
    again = job_table.claim(ctx.catalog, "elsewhere:2:b", ["scan"])
    assert again is not None and again.id == second


def test_an_expired_lease_or_a_dead_runner_frees_the_job(ctx: Context) -> None:
    remote = job_table.enqueue(ctx.catalog, "noop")
    job = job_table.claim(ctx.catalog, "elsewhere:1:a", ["noop"], lease=timedelta(seconds=0.3))
    assert job is not None and job.id == remote
    assert job_table.claim(ctx.catalog, "elsewhere:2:b", ["noop"]) is None  # leased
    time.sleep(0.4)
    taken = job_table.claim(ctx.catalog, "elsewhere:2:b", ["noop"])
    assert taken is not None and (taken.id, taken.attempts) == (remote, 2)
    job_table.finish(ctx.catalog, "elsewhere:1:a", remote, "completed")  # the old runner lost it
    assert _state(ctx, remote).state == "running"
    # A runner of this host whose process is gone: its job is free at once, lease or not.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    local = job_table.enqueue(ctx.catalog, "noop")
    owner = f"{socket.gethostname()}:{dead.pid}:x"
    assert job_table.claim(ctx.catalog, owner, ["noop"], lease=timedelta(hours=1)) is not None
    again = job_table.claim(ctx.catalog, "elsewhere:3:c", ["noop"])
    assert again is not None and again.id == local


def test_retries_back_off_then_fail(ctx: Context) -> None:
    job_id = job_table.enqueue(ctx.catalog, "flaky", max_attempts=2)
    calls: list[int] = []

    def flaky(_: Context, job: job_table.Job, control: JobControl) -> None:
        calls.append(job.attempts)
        raise RetryLater("the NAS is busy")

    runner = JobRunner(ctx, {"flaky": flaky}, [Lane("x", ("flaky",), 1)])
    job = job_table.claim(ctx.catalog, runner.owner, ["flaky"])
    assert job is not None
    runner._run(job)
    row = _state(ctx, job_id)
    assert (row.state, row.error) == ("queued", "the NAS is busy")
    assert row.run_after.replace(tzinfo=None) > now_utc().replace(tzinfo=None)  # backoff, not at once
    assert job_table.claim(ctx.catalog, runner.owner, ["flaky"]) is None
    with ctx.catalog.write() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(run_after=now_utc()))
    job = job_table.claim(ctx.catalog, runner.owner, ["flaky"])
    assert job is not None
    runner._run(job)
    assert _state(ctx, job_id).state == "failed" and calls == [1, 2]


def test_a_lease_is_renewed_by_the_timer_not_by_progress(ctx: Context) -> None:
    """A job busy for longer than its lease without reporting anything (hashing one large file) keeps it;
    a second runner polling meanwhile never takes it; a cancellation asked elsewhere reaches it."""
    started, release = threading.Event(), threading.Event()
    runs: list[str] = []

    def busy(_: Context, job: job_table.Job, control: JobControl) -> str:
        runs.append(job.payload["who"])
        started.set()
        while not release.wait(0.05):
            if control.cancel.is_set():
                return "stopped"
        return "done"

    handlers: dict[str, Handler] = {"busy": busy}
    one = JobRunner(ctx, handlers, [Lane("x", ("busy",), 1)], poll=0.05, lease_seconds=0.6)
    two = JobRunner(ctx, handlers, [Lane("x", ("busy",), 1)], poll=0.05, lease_seconds=0.6)
    long_job = job_table.enqueue(ctx.catalog, "busy", {"who": "long"})
    one.start()
    try:
        assert started.wait(10)
        two.start()
        time.sleep(2.0)  # more than three leases
        assert runs == ["long"] and _state(ctx, long_job).lease_owner == one.owner
        release.set()
        deadline = time.monotonic() + 10
        while _state(ctx, long_job).state != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert _state(ctx, long_job).result == "done"
        release.clear()
        started.clear()
        cancelled = job_table.enqueue(ctx.catalog, "busy", {"who": "cancelled"})
        assert started.wait(10)
        job_table.request_cancel(ctx.catalog, cancelled)  # as another process would: through the catalog
        deadline = time.monotonic() + 10
        while _state(ctx, cancelled).state != "cancelled":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert _state(ctx, cancelled).result == "stopped"
    finally:
        release.set()
        one.stop()
        two.stop()


def test_a_stopping_server_gives_its_jobs_back(ctx: Context) -> None:
    started = threading.Event()

    def slow(_: Context, job: job_table.Job, control: JobControl) -> None:
        started.set()
        control.cancel.wait(30)

    runner = JobRunner(ctx, {"slow": slow}, [Lane("x", ("slow",), 1)], poll=0.05)
    job_id = job_table.enqueue(ctx.catalog, "slow")
    runner.start()
    assert started.wait(10)
    runner.stop()
    row = _state(ctx, job_id)
    assert (row.state, row.attempts, row.lease_owner) == ("queued", 0, None)  # resumed at the next start


# -- kill -9 of the server during a scan --------------------------------------------------------------------
def _serve(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mediamesh", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _admin_token(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if line.strip().startswith("mm_"):
            return line.strip()
    raise AssertionError("no admin token printed")


def _request(port: int, token: str, method: str, path: str) -> Any:
    import json
    import urllib.request

    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method, headers={"Authorization": f"Bearer {token}"}
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_kill_9_during_a_scan_then_restart_completes_it(tmp_path: Path) -> None:
    library = tmp_path / "library"
    files = []
    for n in range(25_000):
        data = f"clip {n // 2 if n < 200 else n}\n".encode()  # 100 pairs of copies: 24,900 media
        files.append(write(library / f"d{n // 500:03d}" / f"clip{n:05d}.mp4", data))
    data_dir = tmp_path / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {
        **os.environ,
        "MEDIAMESH_DATA_DIR": str(data_dir),
        "MEDIAMESH_PORT": str(port),
        "MEDIAMESH_HOST": "127.0.0.1",
        "MEDIAMESH_SETTLE_SECONDS": "0",
        "MEDIAMESH_COMMIT_BATCH": "500",
        "MEDIAMESH_THUMBNAILS": "off",
    }
    add = subprocess.run(
        [sys.executable, "-m", "mediamesh", "source", "add", "lib", str(library)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
    )
    assert add.returncode == 0, add.stderr
    db = data_dir / "catalog.db"
    proc = _serve(env)
    try:
        token = _admin_token(proc)
        started = _request(port, token, "POST", "/api/v1/sources/lib/scans")
        assert started["status"] == "running"
        deadline = time.monotonic() + 60
        while True:  # wait until some batches are committed, then kill the server mid-scan
            with sqlite3.connect(db) as conn:
                indexed = conn.execute("SELECT count(*) FROM files").fetchone()[0]
            if indexed >= 2000:
                break
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status FROM scans").fetchall() == [("running",)], "killed mid-scan"
        indexed = conn.execute("SELECT count(*) FROM files").fetchone()[0]
        assert 0 < indexed < len(files)
    again = _serve(env)
    try:
        deadline = time.monotonic() + 120
        while True:
            scans = _request(port, token, "GET", "/api/v1/scans")["data"]
            if any(s["status"] == "completed" for s in scans):
                break
            assert time.monotonic() < deadline, scans
            time.sleep(0.2)
        scan_jobs = _request(port, token, "GET", "/api/v1/jobs?kind=scan")["data"]
    finally:
        again.send_signal(signal.SIGTERM)
        again.communicate(timeout=30)
    assert [(j["state"], j["attempts"]) for j in scan_jobs] == [("completed", 2)]
    statuses = sorted(s["status"] for s in scans)
    assert statuses == ["completed", "interrupted"]  # the killed one was found abandoned
    with sqlite3.connect(db) as conn:
        total, paths = conn.execute("SELECT count(*), count(DISTINCT path) FROM files").fetchone()
        media = conn.execute("SELECT count(*) FROM media").fetchone()[0]
        state = dict(conn.execute("SELECT path, media_id FROM files WHERE state = 'present'").fetchall())
    assert (total, paths, media) == (25_000, 25_000, 24_900), "no row lost, none twice"
    sample = files[:4] + files[190:210] + files[-4:]
    for path, digest in b3sum(*sample).items():
        assert state[str(path.relative_to(library))] == digest


# -- one connection manager -------------------------------------------------------------------------------
def test_a_new_password_reaches_every_user_of_the_source(
    sqlite_ctx: Context, samba: SambaServer, tmp_path: Path
) -> None:
    """The NAS's password changes and the source is given the new one; then the NAS restarts (every
    connection drops). The health probe, content, scans and enrichment all log in again with the new
    password: none keeps a backend made with the old one."""
    ctx = sqlite_ctx
    share = samba.share_dir / "password-change"
    clip = write(share / "a" / "clip.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 4000)
    source_svc.add_source(ctx, "nas", samba.url(share.name), password=PASSWORD)
    manager = SourceManager(ctx, interval=3600)
    try:
        assert run_scan(ctx, "nas")["status"] == "completed"
        manager.probe_all()
        assert source_svc.show_source(ctx, "nas")["health"]["status"] == "online"
        media_id = b3sum(clip)[clip]
        content_svc.open_media(ctx, media_id).close()
        built = ctx.connections.built
        new = "a new password 2"
        samba.set_password(new)
        try:
            source_svc.update_source(ctx, "nas", password=new)
            samba.kill()
            samba.start(reset_password=False)
            manager.probe_all()
            shown = source_svc.show_source(ctx, "nas")
            assert shown["health"]["status"] == "online", shown["health"]
            opened = content_svc.open_media(ctx, media_id)
            assert opened.fh.read() == clip.read_bytes()
            opened.close()
            write(share / "b" / "new.mp4", 5000)
            assert run_scan(ctx, "nas")["files_new"] == 1
            # One new backend for the new version of the source, shared by all of them.
            assert ctx.connections.built == built + 1
        finally:
            samba.set_password(PASSWORD)
    finally:
        manager.stop()


def test_a_scan_busy_on_one_file_keeps_its_heartbeat(
    sqlite_ctx: Context, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan record beats by a timer: a scan stuck reading one file (a huge file on a slow NAS) reports
    no progress for minutes, and must not look abandoned to another process meanwhile."""
    from mediamesh.backends.local import LocalBackend
    from mediamesh.catalog.schema import scans
    from mediamesh.scanning.filters import PathFilter
    from mediamesh.scanning.pipeline import Scanner, ScanOptions, SourceRef
    from tests.helpers import FaultyBackend

    ctx = sqlite_ctx
    write(library / "clip.mp4", 1000)
    added = source_svc.add_source(ctx, "lib", str(library))
    monkeypatch.setattr(Scanner, "HEARTBEAT_SECONDS", 0.1)
    backend = FaultyBackend(LocalBackend(str(library)))
    entered, gate = threading.Event(), threading.Event()

    def stuck(_: str) -> None:
        entered.set()
        gate.wait(20)

    backend.on_open = stuck
    source = SourceRef(added["id"], "lib", added["identity"], PathFilter((), ()))
    scanner = Scanner(ctx.catalog, backend, source, ScanOptions(settle_seconds=0))
    thread = threading.Thread(target=scanner.run)
    thread.start()
    try:
        assert entered.wait(20)

        def beat() -> Any:
            with ctx.catalog.read() as conn:
                return conn.execute(select(scans.c.heartbeat_at, scans.c.files_new)).one()

        first = beat()
        time.sleep(0.6)
        second = beat()
        assert second.heartbeat_at > first.heartbeat_at and second.files_new == first.files_new == 0
    finally:
        gate.set()
        thread.join(30)
    assert run_scan(ctx, "lib")["status"] == "completed"


def test_files_still_being_written_get_a_follow_up_scan(tmp_path: Path, library: Path) -> None:
    """A scan defers a file written just now; the server looks again once it has settled, without
    waiting for the next schedule."""
    from mediamesh.server import job_runner
    from mediamesh.services.scan_runner import ScanQueue
    from mediamesh.services.scans import list_scans
    from tests.conftest import make_settings

    ctx = Context(make_settings(tmp_path, settle_seconds=0.5))
    write(library / "old.mp4", 100)
    source_svc.add_source(ctx, "lib", str(library))
    write(library / "recording.mp4", 100, mtime_offset=0)  # being written now
    runner = job_runner(ctx)
    runner.poll = 0.05
    runner.start()
    try:
        ScanQueue(ctx, runner).start("lib")
        deadline = time.monotonic() + 30
        while len([s for s in list_scans(ctx) if s["status"] == "completed"]) < 2:
            assert time.monotonic() < deadline, list_scans(ctx)
            time.sleep(0.1)
    finally:
        runner.stop()
        ctx.close()
    ctx = Context(make_settings(tmp_path, settle_seconds=0.5))
    try:
        follow_up, first = list_scans(ctx)[:2]
    finally:
        ctx.close()
    assert (first["files_new"], first["files_deferred"]) == (1, 1)
    assert (follow_up["trigger"], follow_up["files_new"], follow_up["files_deferred"]) == ("settle", 1, 0)


def test_finished_jobs_are_forgotten_after_a_week(ctx: Context) -> None:
    """Every scan leaves two job rows: a runner forgets finished ones older than a week when it starts
    (and hourly), never queued or running ones."""
    old, recent, waiting = (job_table.enqueue(ctx.catalog, "noop", {"n": n}) for n in range(3))
    for job_id in (old, recent):
        job = job_table.claim(ctx.catalog, "elsewhere:1:a", ["noop"], job_id=job_id)
        assert job is not None
        job_table.finish(ctx.catalog, "elsewhere:1:a", job_id, "completed")
    with ctx.catalog.write() as conn:
        conn.execute(update(jobs).where(jobs.c.id == old).values(finished_at=now_utc() - timedelta(days=8)))
    runner = JobRunner(ctx, {}, [Lane("x", ("other",), 1)], poll=0.05)
    runner.start()
    runner.stop()
    with ctx.catalog.read() as conn:
        left = set(conn.execute(select(jobs.c.id)).scalars())
    assert left == {recent, waiting}
