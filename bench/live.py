"""Benchmark: live changes. A real server (create_app under uvicorn, in this process) watching a local
folder (inotify), an SMB share on a private smbd (CHANGE_NOTIFY) and an SFTP folder on a private sshd
(polled), all on 127.0.0.1.

1. Latency: files written one after another while the server runs (the SMB ones through the share, as a
   PC copies); for each, the time from the end of its last write until its row is in the catalog, p50 and
   p95, and the same minus the settle time (what mediamesh adds).
2. Idle cost of watching an SMB share of N files, against the reference of the issue: a scheduled
   no-change rescan of the same share every hour. SMB requests this process sends (counted on
   smbprotocol's Connection.send) and CPU time of the whole process, per minute.
3. A burst: 10,000 files written at once into 100 folders of the watched local folder; the time until the
   catalog has them all, against a manual ``mediamesh scan`` of the same files (the reference), and a full
   rescan afterwards that must find nothing left to do (no event lost).

    .venv/bin/python bench/live.py                              # 200 files each, 20k-file SMB share
    .venv/bin/python bench/live.py --files 100 --idle-files 100000 --idle-minutes 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import guard  # noqa: F401  - loopback only, in this process and those it starts

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import smbclient  # noqa: E402
import uvicorn  # noqa: E402
from smbprotocol.connection import Connection  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from tests.servers.openssh import PASSWORD as SSH_PASSWORD  # noqa: E402
from tests.servers.openssh import SshServer  # noqa: E402
from tests.servers.samba import PASSWORD, USER, WRITABLE_SHARE, SambaServer, free_port  # noqa: E402

from mediamesh.catalog.schema import files, jobs  # noqa: E402
from mediamesh.config import Settings  # noqa: E402
from mediamesh.context import Context  # noqa: E402
from mediamesh.server import create_app  # noqa: E402
from mediamesh.services import sources as source_svc  # noqa: E402
from mediamesh.services.scans import run_scan  # noqa: E402

SENT = {"smb": 0}
_send = Connection.send


def _counting_send(self: Connection, message: Any, *args: Any, **kwargs: Any) -> Any:
    SENT["smb"] += 1
    return _send(self, message, *args, **kwargs)


Connection.send = _counting_send


class Server:
    def __init__(self, data: Path, settle: float, poll: float) -> None:
        os.environ.setdefault("MEDIAMESH_LOCAL_ROOTS", str(data.parent))
        settings = Settings(
            data_dir=data,
            settle_seconds=settle,
            watch_poll_interval=poll,
            health_interval=60,
            thumbnails="off",
        )
        self.app = create_app(settings)
        self.ctx: Context = self.app.state.ctx
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def watched(self, name: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            state = (source_svc.show_source(self.ctx, name)["mount"] or {}).get("watch") or {}
            if state.get("mode") == "notify" or (state.get("mode") == "poll" and state.get("folders")):
                return state
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} is not watched: {state}")
            time.sleep(0.1)

    def present(self, source: str, paths: list[str]) -> set[str]:
        source_id = source_svc.show_source(self.ctx, source)["id"]
        with self.ctx.catalog.read() as conn:
            return set(
                conn.execute(
                    select(files.c.path).where(
                        files.c.source_id == source_id, files.c.state == "present", files.c.path.in_(paths)
                    )
                ).scalars()
            )

    def idle_queue(self) -> bool:
        with self.ctx.catalog.read() as conn:
            return (
                conn.execute(
                    select(func.count()).select_from(jobs).where(jobs.c.state.in_(("queued", "running")))
                ).scalar_one()
                == 0
            )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(server: Server, source: str, write: Any, count: int, gap: float) -> list[float]:
    """Write ``count`` files ``gap`` seconds apart; the seconds from each write's end to its row."""
    written: dict[str, float] = {}
    seen: dict[str, float] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() or len(seen) < len(written):
            waiting = [p for p in written if p not in seen]
            if waiting:
                now = time.monotonic()
                for path in server.present(source, waiting):
                    seen[path] = now
            time.sleep(0.02)
            if done.is_set() and time.monotonic() - last_write > 120:
                return

    last_write = time.monotonic()
    poller = threading.Thread(target=watch, daemon=True)
    poller.start()
    batch = uuid.uuid4().hex[:6]
    for i in range(count):
        path = f"live-{batch}/d{i // 50:02}/f{i:04}.jpg"
        write(path, os.urandom(4096) + i.to_bytes(4, "big"))
        written[path] = last_write = time.monotonic()
        time.sleep(gap)
    done.set()
    poller.join()
    missing = [p for p in written if p not in seen]
    if missing:
        raise SystemExit(f"{len(missing)} files never reached the catalog of {source}, e.g. {missing[:3]}")
    return [seen[p] - written[p] for p in written]


def smb_writer(samba: SambaServer, folder: str) -> Any:
    cache: dict[str, Any] = {}
    kw = {"port": samba.port, "username": USER, "password": PASSWORD, "connection_cache": cache}
    base = rf"\\127.0.0.1\{WRITABLE_SHARE}\{folder}"
    made: set[str] = set()

    def write(path: str, data: bytes) -> None:
        parent = "\\".join(path.split("/")[:-1])
        if parent not in made:
            smbclient.makedirs(base + "\\" + parent, exist_ok=True, **kw)
            made.add(parent)
        with smbclient.open_file(base + "\\" + path.replace("/", "\\"), mode="wb", **kw) as fh:
            fh.write(data)

    return write


def local_writer(root: Path) -> Any:
    def write(path: str, data: bytes) -> None:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    return write


def build_share(folder: Path, count: int) -> None:
    past = time.time() - 3600
    for i in range(count):
        d = folder / f"d{i // 200:04}"
        if i % 200 == 0:
            d.mkdir(parents=True, exist_ok=True)
        p = d / f"img{i:07}.jpg"
        p.write_bytes(i.to_bytes(8, "big") * 64)
        os.utime(p, (past, past))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=200, help="files written per source for the latency")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between two written files")
    parser.add_argument("--settle", type=float, default=2.0, help="MEDIAMESH_SETTLE_SECONDS of the server")
    parser.add_argument("--poll", type=float, default=10.0, help="MEDIAMESH_WATCH_POLL_INTERVAL (SFTP)")
    parser.add_argument(
        "--idle-files", type=int, default=20_000, help="files on the SMB share for the idle cost"
    )
    parser.add_argument("--idle-minutes", type=float, default=2.0, help="each of the two idle windows")
    parser.add_argument("--burst", type=int, default=10_000)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mediamesh-live-"))
    samba = SambaServer(work / "samba").start()
    sshd = SshServer().start()
    rows: list[tuple[str, str, str, str]] = []
    try:
        local = work / "local"
        local.mkdir()
        (local / "seed.jpg").write_bytes(b"seed" * 100)
        share = samba.share_dir / "live"
        share.mkdir(parents=True)
        (share / "seed.jpg").write_bytes(b"seed" * 100)
        remote = sshd.share_dir / f"live-{uuid.uuid4().hex[:6]}"
        remote.mkdir()
        (remote / "seed.jpg").write_bytes(b"seed" * 100)
        for p in (local / "seed.jpg", share / "seed.jpg", remote / "seed.jpg"):
            os.utime(p, (time.time() - 3600,) * 2)

        server = Server(work / "data", args.settle, args.poll)
        ctx = server.ctx
        source_svc.add_source(ctx, "local", str(local))
        source_svc.add_source(ctx, "nas", samba.url("live"), password=PASSWORD)
        source_svc.add_source(ctx, "box", sshd.url(remote.name), password=SSH_PASSWORD)
        for name in ("local", "nas", "box"):
            run_scan(ctx, name)
        states = {name: server.watched(name) for name in ("local", "nas", "box")}
        print(f"watching: { {n: (s['mode'], s.get('via') or s.get('reason')) for n, s in states.items()} }")

        # 1. latency
        print(f"\n1. latency, {args.files} files per source, {args.gap:g} s apart, settle {args.settle:g} s")
        print("| source | how | p50 | p95 | p50 - settle | p95 - settle |\n|---|---|---|---|---|---|")
        for name, how, write in (
            ("local", "inotify", local_writer(local)),
            ("nas", "SMB CHANGE_NOTIFY", smb_writer(samba, "live")),
            ("box", f"SFTP polled every {args.poll:g} s", local_writer(remote)),
        ):
            took = latency(server, name, write, args.files, args.gap)
            p50, p95 = percentile(took, 0.5), percentile(took, 0.95)
            print(
                f"| {name} | {how} | {p50:.2f} s | {p95:.2f} s | {p50 - args.settle:.2f} s | {p95 - args.settle:.2f} s |"
            )
            rows.append((name, how, f"{p50:.2f}", f"{p95:.2f}"))
            while not server.idle_queue():
                time.sleep(0.2)

        # 2. idle cost against an hourly no-change rescan
        print(f"\n2. idle cost of watching an SMB share of {args.idle_files:,} files")
        big = samba.share_dir / "big"
        build_share(big, args.idle_files)
        source_svc.add_source(ctx, "big", samba.url("big"), password=PASSWORD)
        t0 = time.perf_counter()
        first = run_scan(ctx, "big")
        print(f"   (first scan: {first['files_seen']:,} files in {time.perf_counter() - t0:.0f} s)")
        server.watched("big")

        def idle() -> tuple[float, float]:
            time.sleep(5)
            # The steady state: a scan's threads leave connections that the next probe closes once they
            # have been idle 2 minutes; close them now rather than wait.
            for name in ("nas", "big"):
                with ctx.catalog.read() as conn:
                    row = source_svc.find_source(conn, name)
                backend = source_svc.backend_for(ctx, row)
                backend.close_idle(0)  # type: ignore[attr-defined]
            sent0, cpu0, t0 = SENT["smb"], time.process_time(), time.monotonic()
            time.sleep(args.idle_minutes * 60)
            minutes = (time.monotonic() - t0) / 60
            return (SENT["smb"] - sent0) / minutes, (time.process_time() - cpu0) / minutes

        idle_requests, idle_cpu = idle()
        names = ("local", "nas", "box", "big")
        for name in names:
            source_svc.update_source(ctx, name, watch="off")
        time.sleep(6)  # the watch manager notices within 5 s
        off_requests, off_cpu = idle()
        for name in names:
            source_svc.update_source(ctx, name, watch="auto")
        sent0, cpu0, t0 = SENT["smb"], time.process_time(), time.perf_counter()
        rescan = run_scan(ctx, "big")
        rescan_requests, rescan_cpu = SENT["smb"] - sent0, time.process_time() - cpu0
        wall = time.perf_counter() - t0
        assert rescan["files_new"] == rescan["files_changed"] == rescan["files_missing"] == 0
        print("| | SMB requests / min | CPU / min |\n|---|---|---|")
        rows_idle = (
            (
                "the server, 4 sources idle, watching (SMB: one CHANGE_NOTIFY each; SFTP polled)",
                idle_requests,
                idle_cpu,
            ),
            ("the same, watching off (health probes, keep-alives, timers)", off_requests, off_cpu),
            ("what watching adds", idle_requests - off_requests, idle_cpu - off_cpu),
        )
        for label, requests, cpu in rows_idle:
            print(f"| {label} | {requests:.0f} | {cpu * 1000:.0f} ms |")
        print(
            f"| hourly no-change rescan (one took {wall:.1f} s, {rescan_requests:,} requests, {rescan_cpu:.2f} s CPU) | {rescan_requests / 60:.0f} | {rescan_cpu / 60 * 1000:.0f} ms |"
        )

        # 3. a burst
        print(f"\n3. a burst of {args.burst:,} files in 100 folders of the watched local folder")
        burst = local / "burst"
        t0 = time.monotonic()
        for i in range(args.burst):
            d = burst / f"d{i % 100:02}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i:05}.jpg").write_bytes(i.to_bytes(4, "big") * 256)
        written = time.monotonic() - t0
        source_id = source_svc.show_source(ctx, "local")["id"]

        def indexed() -> int:
            with ctx.catalog.read() as conn:
                return int(conn.execute(
                    select(func.count()).select_from(files).where(
                        files.c.source_id == source_id, files.c.path.like("burst/%"), files.c.state == "present"
                    )
                ).scalar_one())  # fmt: skip

        while indexed() < args.burst or not server.idle_queue():
            if time.monotonic() - t0 > 600:
                raise SystemExit(f"only {indexed()} of {args.burst} files indexed after 10 minutes")
            time.sleep(0.2)
        by_watch = time.monotonic() - t0
        check = run_scan(ctx, "local")
        lost = check["files_new"] + check["files_changed"] + check["files_missing"]
        with ctx.catalog.read() as conn:
            from mediamesh.catalog.schema import scans

            watch_scans = conn.execute(
                select(func.count()).select_from(scans).where(scans.c.source_id == source_id, scans.c.trigger.in_(("watch", "settle")))
            ).scalar_one()  # fmt: skip
        server.stop()

        # The reference: the same files indexed by one manual scan, in a fresh catalog.
        reference_data = work / "reference"
        ref_ctx = Context(Settings(data_dir=reference_data, settle_seconds=0, thumbnails="off"))
        source_svc.add_source(ref_ctx, "burst", str(burst))
        t1 = time.perf_counter()
        manual = run_scan(ref_ctx, "burst")
        manual_time = time.perf_counter() - t1
        ref_ctx.close()
        assert manual["files_new"] == args.burst
        print("| | seconds | files in the catalog | left for a full rescan |\n|---|---|---|---|")
        print(
            f"| watched: written ({written:.1f} s) until indexed, settle {args.settle:g} s included, {watch_scans} watch scans | {by_watch:.1f} | {args.burst:,} | {lost} |"
        )
        print(
            f"| reference: one `mediamesh scan` of the same files | {manual_time:.1f} | {manual['files_new']:,} | - |"
        )
    finally:
        samba.stop()
        sshd.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(sshd.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
