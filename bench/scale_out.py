"""Benchmark: the scale-out mode on this machine, against the real PostgreSQL on 127.0.0.1.

1. First scan of one tree (two sources, half each) by the embedded single process (SQLite, the server's
   own job runner), by one ``mediamesh worker`` and by two (one per source, on PostgreSQL): files/s, the
   ratio to the embedded run, and the three catalogs compared row for row.
2. kill -9 of a worker at random points of a scan (two workers serve the source), ``--kills`` times: every
   run must converge to the catalog of an undisturbed scan, with nothing duplicated.
3. A simulated NAS link: a TCP relay on 127.0.0.1 that counts bytes and holds them to ``--link-mbit``.
   The share is read through it by the SMB backend (a private smbd), as the server would over the LAN;
   then a local worker scans the same folder as a local path, its catalog traffic (PostgreSQL) through
   the same relay. Bytes that crossed the "network" and time for each.

    .venv/bin/python bench/scale_out.py                      # 20,000 files, 20 kills, a 1 Gbit/s link
    .venv/bin/python bench/scale_out.py --files 4000 --kills 5
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import guard  # noqa: F401  - loopback only, in this process and those it starts

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from tests.servers.samba import PASSWORD, SambaServer  # noqa: E402

from mediamesh.catalog.schema import files, sources  # noqa: E402
from mediamesh.config import Settings  # noqa: E402
from mediamesh.context import Context  # noqa: E402
from mediamesh.services import jobs as job_svc  # noqa: E402
from mediamesh.services import sources as source_svc  # noqa: E402
from mediamesh.services.jobs import JobRunner, Lane  # noqa: E402
from mediamesh.services.scan_runner import ScanQueue  # noqa: E402
from mediamesh.services.scans import HANDLERS, get_scan, run_scan  # noqa: E402

LEASE = 3.0
Rows = list[tuple[Any, ...]]


def admin_url() -> str:
    if "MEDIAMESH_TEST_PG_URL" in os.environ:
        return os.environ["MEDIAMESH_TEST_PG_URL"]
    found = ROOT / ".test-pg-url"
    if found.is_file() and found.read_text().strip():
        return found.read_text().strip()
    return "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


class Databases:
    """Fresh PostgreSQL databases, dropped at the end."""

    def __init__(self) -> None:
        self.admin = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
        self.made: list[str] = []

    def new(self) -> str:
        name = f"mediamesh_bench_{os.getpid()}_{secrets.token_hex(3)}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.made.append(name)
        return make_url(admin_url()).set(database=name).render_as_string(hide_password=False)

    def close(self) -> None:
        with self.admin.connect() as conn:
            for name in self.made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


def make_tree(root: Path, count: int, size: int) -> None:
    for n in range(count):
        path = root / f"d{n // 250:04d}" / f"clip{n:06d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(n.to_bytes(8, "little") + os.urandom(size - 8))
        stamp = time.time() - 3600
        os.utime(path, (stamp, stamp))


def settings(work: Path, url: str, **more: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": work / "data",
        "database_url": url,
        "settle_seconds": 0,
        "thumbnails": "off",
        "job_lease_seconds": LEASE,
        "local_roots": str(work),
        **more,
    }
    return Settings(**values)


def env_for(work: Path, url: str, roots: Path, **more: str) -> dict[str, str]:
    return {
        **os.environ,
        "MEDIAMESH_DATA_DIR": str(work / "data"),
        "MEDIAMESH_DATABASE_URL": url,
        "MEDIAMESH_SETTLE_SECONDS": "0",
        "MEDIAMESH_THUMBNAILS": "off",
        "MEDIAMESH_JOB_LEASE_SECONDS": str(LEASE),
        "MEDIAMESH_LOCAL_ROOTS": str(roots),
        **more,
    }


def start_worker(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mediamesh", "worker", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()


def wait(what: Callable[[], Any], timeout: float = 600) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(str(what))
        time.sleep(0.05)


def live_workers(ctx: Context) -> int:
    return sum(1 for w in job_svc.list_workers(ctx)["workers"] if w["role"] == "worker")


def rows_of(ctx: Context) -> Rows:
    """The catalog's decisions, by source name (ids may differ between catalogs)."""
    with ctx.catalog.read() as conn:
        names = {r.id: r.name for r in conn.execute(select(sources.c.id, sources.c.name))}
        return sorted(
            (names[r.source_id], r.path, r.media_id, r.size, r.state)
            for r in conn.execute(
                select(files.c.source_id, files.c.path, files.c.media_id, files.c.size, files.c.state)
            )
        )


def scans_done(ctx: Context, job_ids: list[int]) -> bool:
    found = [job_svc.get_job(ctx, j) for j in job_ids]
    bad = [(j["state"], j["attempts"], j["error"]) for j in found if j["state"] in ("failed", "cancelled")]
    if bad:
        raise RuntimeError(f"a scan job ended {bad}")
    return all(j["state"] == "completed" for j in found)


# -- 1. first scan: embedded, one worker, two workers ---------------------------------------------------
def first_scans(work: Path, tree: Path, count: int, dbs: Databases) -> tuple[list[tuple[str, ...]], Rows]:
    results: dict[str, tuple[float, Rows]] = {}

    # The embedded single process: the server's own job runner (two scan threads), SQLite.
    ctx = Context(settings(work / "embedded", f"sqlite:///{work / 'embedded.db'}", local_roots=str(tree)))
    for half in ("a", "b"):
        source_svc.add_source(ctx, half, str(tree / half))
    runner = JobRunner(ctx, HANDLERS, [Lane("scan", ("scan",), 2)])
    t0 = time.perf_counter()
    jobs = [ScanQueue(ctx).start(h, wait=0)["job"] for h in ("a", "b")]
    runner.start()
    wait(lambda: scans_done(ctx, jobs))
    results["embedded (SQLite, 1 process)"] = (time.perf_counter() - t0, rows_of(ctx))
    runner.stop()
    ctx.close()

    for label, worker_args in (
        ("1 worker (PostgreSQL)", [["--concurrency", "2", "--name", "w1"]]),
        ("2 workers (PostgreSQL)", [["--source", "a", "--name", "wa"], ["--source", "b", "--name", "wb"]]),
    ):
        url = dbs.new()
        place = work / label.split()[0]
        ctx = Context(settings(place, url, local_roots=str(tree)))
        for half in ("a", "b"):
            source_svc.add_source(ctx, half, str(tree / half))
        env = env_for(place, url, tree, MEDIAMESH_JOB_LEASE_SECONDS="60")
        procs = [start_worker(env, *a) for a in worker_args]
        try:
            wait(lambda: live_workers(ctx) == len(procs), 60)  # noqa: B023
            t0 = time.perf_counter()
            jobs = [ScanQueue(ctx).start(h, wait=0)["job"] for h in ("a", "b")]
            wait(lambda: scans_done(ctx, jobs))  # noqa: B023
            results[label] = (time.perf_counter() - t0, rows_of(ctx))
        finally:
            stop(procs)
            ctx.close()

    base_time, base_rows = results["embedded (SQLite, 1 process)"]
    table: list[tuple[str, ...]] = []
    for label, (seconds, rows) in results.items():
        same = "identical" if rows == base_rows else f"DIFFERENT ({len(rows)} vs {len(base_rows)} rows)"
        table.append(
            (f"first scan, {label}", f"{count / seconds:,.0f} files/s", f"{seconds:.1f} s",
             f"{base_time / seconds:.2f}x", same)
        )  # fmt: skip
    return table, base_rows


# -- 2. kill -9 at random points --------------------------------------------------------------------------
def kills(work: Path, tree: Path, count: int, runs: int, dbs: Databases) -> list[tuple[str, ...]]:
    ctx = Context(settings(work / "quiet", f"sqlite:///{work / 'quiet.db'}", local_roots=str(tree)))
    source_svc.add_source(ctx, "nas", str(tree))
    t0 = time.perf_counter()
    assert run_scan(ctx, "nas")["status"] == "completed"
    undisturbed_time = time.perf_counter() - t0
    undisturbed = rows_of(ctx)
    ctx.close()
    rng = random.Random(20261204)
    converged = duplicated = killed_mid = 0
    recover: list[float] = []
    for run in range(runs):
        url = dbs.new()
        place = work / f"kill{run}"
        ctx = Context(settings(place, url, local_roots=str(tree)))
        source_svc.add_source(ctx, "nas", str(tree))
        env = env_for(place, url, tree, MEDIAMESH_COMMIT_BATCH="250")
        procs = [
            start_worker(env, "--source", "nas", "--name", f"k{run}-{i}", "--concurrency", "1")
            for i in range(2)
        ]
        try:
            wait(lambda: live_workers(ctx) == 2, 60)  # noqa: B023
            job = ScanQueue(ctx).start("nas", wait=0)["job"]
            time.sleep(rng.uniform(0.1, max(0.2, undisturbed_time * 1.5)))
            state = job_svc.get_job(ctx, job)
            if state["state"] == "running" and state["lease_owner"]:
                pid = int(state["lease_owner"].split(":")[1])
                victim = next((p for p in procs if p.pid == pid), None)
                if victim is not None:
                    victim.kill()
                    victim.wait(10)  # reaped, as a supervisor (systemd, docker) would
                    killed_mid += 1
            t1 = time.perf_counter()
            wait(lambda: scans_done(ctx, [job]), 300)  # noqa: B023
            recover.append(time.perf_counter() - t1)
            rows = rows_of(ctx)
            renamed = [("nas", *r[1:]) for r in rows]
            converged += renamed == undisturbed
            duplicated += len(rows) - len({r[1] for r in rows})
        finally:
            stop(procs)
            ctx.close()
    return [
        (f"kill -9 of a worker at {runs} random points ({count:,} files)",
         f"{converged}/{runs} converged", f"{killed_mid} killed mid-scan",
         f"{duplicated} duplicated rows", f"after the kill: median {sorted(recover)[len(recover) // 2]:.1f} s "
         f"to completion (lease {LEASE:.0f} s)"),
    ]  # fmt: skip


# -- 3. a simulated NAS link -------------------------------------------------------------------------------
class Link:
    """A TCP relay on 127.0.0.1 that counts the bytes crossing it and holds them to ``mbit`` Mbit/s."""

    def __init__(self, target_port: int, mbit: float) -> None:
        self.target = ("127.0.0.1", target_port)
        self.rate = mbit * 1e6 / 8
        self.bytes = 0
        self._lock = threading.Lock()
        self._budget_at = time.monotonic()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self._spend(len(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _spend(self, n: int) -> None:
        """One link shared by both directions and every connection: each chunk waits for its turn."""
        with self._lock:
            self.bytes += n
            start = max(self._budget_at, time.monotonic())
            self._budget_at = start + n / self.rate
            delay = self._budget_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def reset(self) -> None:
        with self._lock:
            self.bytes = 0

    def close(self) -> None:
        self.server.close()


def nas_link(work: Path, count: int, size: int, mbit: float, dbs: Databases) -> list[tuple[str, ...]]:
    samba = SambaServer(work / "samba").start()
    try:
        tree = samba.share_dir / "video"
        make_tree(tree, count, size)
        smb_link = Link(samba.port, mbit)
        location = samba.url("video").replace(f":{samba.port}/", f":{smb_link.port}/")
        # The server's way: the network backend reads every byte over the link.
        url = dbs.new()
        ctx = Context(settings(work / "net", url, local_roots=str(tree)))
        source_svc.add_source(ctx, "video", location, password=PASSWORD)
        smb_link.reset()
        t0 = time.perf_counter()
        summary = run_scan(ctx, "video")
        net_time = time.perf_counter() - t0
        net_bytes = smb_link.bytes
        assert summary["status"] == "completed" and summary["files_seen"] == count, summary
        net_rows = rows_of(ctx)
        ctx.close()
        # A worker next to the files: reads them as a local path; only catalog rows cross the link.
        url = dbs.new()
        db = make_url(url)
        pg_link = Link(int(db.port or 5432), mbit)
        ctx = Context(settings(work / "local", url, local_roots=str(tree)))
        source_svc.add_source(ctx, "video", location, password=PASSWORD)
        source_svc.update_source(ctx, "video", worker_paths={"nas": str(tree)})
        worker_url = db.set(host="127.0.0.1", port=pg_link.port).render_as_string(hide_password=False)
        proc = start_worker(env_for(work / "local", worker_url, tree), "--name", "nas", "--source", "video")
        try:
            wait(lambda: live_workers(ctx) == 1, 60)
            smb_link.reset()
            pg_link.reset()
            t0 = time.perf_counter()
            job = ScanQueue(ctx).start("video", wait=0)["job"]
            wait(lambda: scans_done(ctx, [job]))
            local_time = time.perf_counter() - t0
            local_bytes = pg_link.bytes + smb_link.bytes
            scan = get_scan(ctx, job_svc.get_job(ctx, job)["result"]["scan_id"])
            local_rows = rows_of(ctx)
        finally:
            stop([proc])
            ctx.close()
            pg_link.close()
        smb_link.close()
    finally:
        samba.stop()
    total = count * size
    same = "identical" if local_rows == net_rows else "DIFFERENT"
    return [
        (f"first scan through the network backend (SMB over a {mbit:.0f} Mbit/s link), "
         f"{count:,} x {size // 1024} KiB = {total / 1e6:,.0f} MB",
         f"{net_time:.1f} s", f"{net_bytes / 1e6:,.1f} MB crossed", "1.00x", "-"),
        ("the same tree by a worker next to it (local path; catalog over the link)",
         f"{local_time:.1f} s", f"{local_bytes / 1e6:,.1f} MB crossed",
         f"{net_time / local_time:.2f}x faster, {net_bytes / max(local_bytes, 1):,.0f}x fewer bytes",
         f"catalog {same}; worker read {scan['bytes_read'] / 1e6:,.0f} MB locally"),
    ]  # fmt: skip


def print_table(title: str, rows: list[tuple[str, ...]]) -> None:
    print(f"\n{title}")
    width = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, width, strict=True)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=20_000, help="files in the first-scan tree (4 KiB each)")
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--kill-files", type=int, default=6_000)
    ap.add_argument("--link-files", type=int, default=2_000)
    ap.add_argument("--link-kib", type=int, default=256)
    ap.add_argument("--link-mbit", type=float, default=1000.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mediamesh-scale-"))
    dbs = Databases()
    try:
        tree = work / "tree"
        for half, n in (("a", args.files // 2), ("b", args.files - args.files // 2)):
            make_tree(tree / half, n, 4096)
        table, _ = first_scans(work, tree, args.files, dbs)
        print_table("1. first scan of one tree (2 sources, half each); ratio to the embedded run", table)
        kill_tree = work / "killtree"
        make_tree(kill_tree, args.kill_files, 1024)
        print_table(
            "2. kill -9 of a worker mid-scan", kills(work, kill_tree, args.kill_files, args.kills, dbs)
        )
        print_table(
            "3. a simulated NAS link",
            nas_link(work, args.link_files, args.link_kib * 1024, args.link_mbit, dbs),
        )
    finally:
        dbs.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
