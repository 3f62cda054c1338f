"""A NAS that hangs (SIGSTOP) or crashes (SIGKILL) while it is scanned, or while idle: the same faults
for every network kind, against its real server (smbd, OpenSSH's sshd, nfs-ganesha).

Pass: the scan ends `interrupted` within 30 s and no known file changes state; a health check says
`offline` within 15 s; once the server is back the source is `online` again and a rescan converges with
no duplicate rows.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from sqlalchemy import func, select

from mediamesh.catalog.schema import files
from mediamesh.context import Context
from mediamesh.scanning.model import ScanStats
from mediamesh.services import sources as source_svc
from mediamesh.services.scans import run_scan
from tests.conftest import make_settings, write
from tests.helpers import rows
from tests.servers import ganesha, openssh, samba


class Server(Protocol):
    @property
    def share_dir(self) -> Path: ...

    def url(self, sub: str = "") -> str: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def kill(self) -> None: ...
    def stop(self) -> None: ...


@pytest.fixture(params=["smb", "sftp", "nfs"])
def own_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Server, str, Callable[[], None]]]:
    """A server of the test's own, since the test stops and kills it: (server, password, restart)."""
    if request.param == "smb":
        smbd = samba.SambaServer(tmp_path / "samba").start()
        yield smbd, samba.PASSWORD, lambda: smbd.wait_ready() if smbd.start(reset_password=False) else None
        smbd.stop()
    elif request.param == "nfs":
        nfsd = ganesha.GaneshaServer(tmp_path / "ganesha").start()
        yield nfsd, "", lambda: nfsd.wait_ready() if nfsd.start() else None
        nfsd.stop()
    else:
        sshd = openssh.SshServer().start()  # in a folder of its own: its user must be able to enter it
        yield sshd, openssh.PASSWORD, lambda: sshd.wait_ready() if sshd.start() else None
        sshd.stop()
        shutil.rmtree(sshd.workdir, ignore_errors=True)


@pytest.fixture
def nas(tmp_path: Path, own_server: tuple[Server, str, Callable[[], None]]) -> Iterator[tuple[Context, Path]]:
    server, password, _ = own_server
    share = server.share_dir / uuid.uuid4().hex
    for i in range(200):
        write(share / f"old{i % 10}" / f"f{i}.jpg", 2000)
    ctx = Context(make_settings(tmp_path))
    source_svc.add_source(ctx, "nas", server.url(share.name), password=password or None)
    assert run_scan(ctx, "nas")["files_new"] == 200
    for i in range(3000):  # a second scan long enough to be cut in the middle
        write(share / f"new{i % 30}" / f"g{i}.jpg", 2000)
    yield ctx, share
    ctx.close()


def states(ctx: Context) -> dict[str, tuple[str, str]]:
    return {p: (r.state, r.media_id) for p, r in rows(ctx).items() if p.startswith("old")}


def scan_and_fail_midway(ctx: Context, fault: Callable[[], None]) -> tuple[dict[str, Any], float]:
    started = threading.Event()
    result: dict[str, Any] = {}

    def progress(stats: ScanStats) -> None:
        if stats.files_new >= 50:
            started.set()

    thread = threading.Thread(target=lambda: result.update(run_scan(ctx, "nas", progress=progress)))
    thread.start()
    assert started.wait(60), "the scan did not get going"
    fault()
    t0 = time.monotonic()
    thread.join(60)
    assert not thread.is_alive(), "the scan did not stop within 60 s"
    return result, time.monotonic() - t0


def check_offline_within(ctx: Context, seconds: float) -> None:
    t0 = time.monotonic()
    health = source_svc.check_source(ctx, "nas")["health"]
    assert health["status"] == "offline", health
    assert time.monotonic() - t0 <= seconds


def converge(ctx: Context) -> None:
    assert source_svc.check_source(ctx, "nas")["health"]["status"] == "online"
    summary = run_scan(ctx, "nas")
    assert summary["status"] == "completed" and summary["files_missing"] == 0, summary
    with ctx.catalog.read() as conn:
        total, distinct = conn.execute(select(func.count(), func.count(files.c.path.distinct()))).one()
    assert total == distinct == 3200


@pytest.mark.slow
def test_hung_server_during_a_scan(nas: tuple[Context, Path], own_server: tuple[Server, str, Any]) -> None:
    ctx, _ = nas
    server = own_server[0]
    before = states(ctx)
    summary, waited = scan_and_fail_midway(ctx, server.pause)
    assert summary["status"] == "interrupted" and waited <= 30, (summary, waited)
    assert states(ctx) == before
    assert source_svc.show_source(ctx, "nas")["health"]["status"] == "offline"  # recorded by the scan
    check_offline_within(ctx, 15)
    server.resume()
    converge(ctx)


@pytest.mark.slow
def test_crashed_server_during_a_scan(nas: tuple[Context, Path], own_server: tuple[Server, str, Any]) -> None:
    ctx, _ = nas
    server, _, restart = own_server
    before = states(ctx)
    summary, waited = scan_and_fail_midway(ctx, server.kill)
    assert summary["status"] == "interrupted" and waited <= 30, (summary, waited)
    assert states(ctx) == before
    check_offline_within(ctx, 15)
    restart()
    converge(ctx)


@pytest.mark.slow
def test_hung_and_crashed_server_while_idle(
    nas: tuple[Context, Path], own_server: tuple[Server, str, Any]
) -> None:
    ctx, _ = nas
    server, _, restart = own_server
    before = states(ctx)
    server.pause()
    check_offline_within(ctx, 15)
    refused = run_scan(ctx, "nas")
    assert refused["status"] == "failed" and "unreachable" in refused["error"]
    server.resume()
    assert source_svc.check_source(ctx, "nas")["health"]["status"] == "online"
    server.kill()
    check_offline_within(ctx, 15)
    restart()
    assert states(ctx) == before
    converge(ctx)
