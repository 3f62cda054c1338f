"""Benchmark: the WebDAV view (/dav/) against the JSON API, ``rclone serve webdav`` and WsgiDAV on the same
local tree: a PROPFIND (Depth: 1) of a folder of 10k entries, and a 1 GiB read.

Builds a tree (a folder of ``--entries`` small pictures and one file of ``--gib`` GiB), scans it into a
fresh data dir, and starts on 127.0.0.1, side by side:
- ``mediamesh serve`` (its /dav/ view and its JSON API: ``/api/v1/files?path_prefix=...`` in pages of
  1,000, and ``/api/v1/files/{id}/content``);
- ``rclone serve webdav --read-only`` on the same folder (the reference: a well-kept WebDAV server in Go);
- WsgiDAV (the maintained Python WebDAV server) behind a2wsgi's WSGI-to-ASGI adapter under uvicorn, as
  mediamesh would have mounted it (docs/webdav.md says why it was not).

Every request is made by ``curl`` (the same client for all); the table shows the median of ``--rounds``
runs, MB/s for the read, and the server's resident memory after the listings (RSS, from /proc).

    .venv/bin/python bench/webdav.py                       # 10k entries, 1 GiB
    .venv/bin/python bench/webdav.py --entries 2000 --gib 0.25 --rounds 3   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import guard  # noqa: F401  - loopback only, in this process and those it starts

PROPFIND_BODY = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, proc: subprocess.Popen[bytes], headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"a server stopped at start: {proc.args!r}")
        try:
            request = urllib.request.Request(url, method="OPTIONS", headers=headers or {})
            with urllib.request.urlopen(request, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"no answer from {url}")


def build(root: Path, entries: int, gib: float) -> None:
    big = root / "tree" / "big"
    big.mkdir(parents=True)
    for i in range(entries):
        (big / f"picture {i:05d}.jpg").write_bytes(i.to_bytes(4, "little") * 256)
    chunk = os.urandom(1 << 20)
    with open(root / "tree" / "film.mov", "wb") as fh:
        for i in range(int(gib * 1024)):
            fh.write(i.to_bytes(8, "little") + chunk[8:])
    old = time.time() - 3600
    for path in (root / "tree").rglob("*"):
        os.utime(path, (old, old))


def curl(*args: str) -> tuple[float, int]:
    """(seconds, bytes received) of one request."""
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{time_total} %{size_download} %{http_code}", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not out[2].startswith("2"):
        raise SystemExit(f"HTTP {out[2]} from curl {' '.join(args)}")
    return float(out[0]), int(out[1])


def propfind(url: str, auth: list[str]) -> tuple[float, int]:
    return curl(
        *auth,
        "-X",
        "PROPFIND",
        "-H",
        "Depth: 1",
        "-H",
        "Content-Type: application/xml",
        "--data",
        PROPFIND_BODY,
        url,
    )


def json_listing(base: str, auth: list[str], source: str, folder: str) -> tuple[float, int]:
    """Every location in the folder through the JSON API, 1,000 per page (what a client of the API does)."""
    started, total, cursor = time.perf_counter(), 0, None
    while True:
        url = f"{base}/api/v1/files?source={source}&path_prefix={folder}&limit=1000"
        if cursor is not None:
            url += f"&cursor={cursor}"
        body = subprocess.run(["curl", "-s", "--fail", *auth, url], capture_output=True, check=True).stdout
        total += len(body)
        cursor = json.loads(body)["next"]
        if cursor is None:
            return time.perf_counter() - started, total


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory now (VmRSS) or at its highest so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    for tool in ("curl", "rclone"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: scripts/install-system-deps.sh bench")

    work = Path(tempfile.mkdtemp(prefix="mm-bench-webdav-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        print(f"building {args.entries} entries and {args.gib} GiB in {work} ...", flush=True)
        build(work, args.entries, args.gib)
        env = {
            **os.environ,
            "MEDIAMESH_DATA_DIR": str(work / "data"),
            "MEDIAMESH_LOCAL_ROOTS": str(work / "tree"),
            "MEDIAMESH_SETTLE_SECONDS": "0",
        }
        cli = [sys.executable, "-m", "mediamesh"]
        subprocess.run(
            [*cli, "source", "add", "bench", str(work / "tree")], env=env, check=True, capture_output=True
        )
        subprocess.run([*cli, "scan", "bench"], env=env, check=True, capture_output=True)
        token = (
            subprocess.run(
                [*cli, "token", "create", "--name", "bench", "--scope", "read"],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )

        ports = {name: free_port() for name in ("mediamesh", "rclone", "wsgidav")}
        mm = subprocess.Popen(
            [*cli, "serve"],
            env={**env, "MEDIAMESH_HOST": "127.0.0.1", "MEDIAMESH_PORT": str(ports["mediamesh"])},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        rc = subprocess.Popen(
            [
                "rclone",
                "serve",
                "webdav",
                str(work / "tree"),
                "--addr",
                f"127.0.0.1:{ports['rclone']}",
                "--read-only",
            ],
            env={**os.environ, "RCLONE_CONFIG": "/dev/null"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wd = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--serve-wsgidav",
                str(work / "tree"),
                str(ports["wsgidav"]),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs += [mm, rc, wd]
        auth = ["-u", f"bench:{token}"]  # what file managers send (HTTP Basic, the token as password)
        bearer = ["-H", f"Authorization: Bearer {token}"]  # the JSON API's
        mm_base = f"http://127.0.0.1:{ports['mediamesh']}"
        wait_for(f"{mm_base}/dav/", mm)
        wait_for(f"http://127.0.0.1:{ports['rclone']}/", rc)
        wait_for(f"http://127.0.0.1:{ports['wsgidav']}/", wd)

        file_id = json.loads(
            subprocess.run(
                [
                    "curl",
                    "-s",
                    "--fail",
                    *bearer,
                    f"{mm_base}/api/v1/files?source=bench&path_prefix=film.mov",
                ],
                capture_output=True,
                check=True,
            ).stdout
        )["data"][0]["id"]
        listings: dict[str, Callable[[], tuple[float, int]]] = {
            "mediamesh /dav/ PROPFIND": lambda: propfind(f"{mm_base}/dav/sources/bench/big/", auth),
            "mediamesh JSON API (pages of 1,000)": lambda: json_listing(mm_base, bearer, "bench", "big"),
            "rclone serve webdav PROPFIND": lambda: propfind(f"http://127.0.0.1:{ports['rclone']}/big/", []),
            "WsgiDAV + a2wsgi PROPFIND": lambda: propfind(f"http://127.0.0.1:{ports['wsgidav']}/big/", []),
        }
        reads: dict[str, Callable[[], tuple[float, int]]] = {
            "mediamesh /dav/ GET": lambda: curl(*auth, f"{mm_base}/dav/sources/bench/film.mov"),
            "mediamesh JSON API content": lambda: curl(*bearer, f"{mm_base}/api/v1/files/{file_id}/content"),
            "rclone serve webdav GET": lambda: curl(f"http://127.0.0.1:{ports['rclone']}/film.mov"),
            "WsgiDAV + a2wsgi GET": lambda: curl(f"http://127.0.0.1:{ports['wsgidav']}/film.mov"),
        }
        # Memory first, on a server that has answered nothing big yet: its peak before and after a listing.
        before = rss_mb(mm.pid, "VmHWM")
        listings["mediamesh /dav/ PROPFIND"]()
        after_dav = rss_mb(mm.pid, "VmHWM")
        listings["mediamesh JSON API (pages of 1,000)"]()
        after_api = rss_mb(mm.pid, "VmHWM")
        listed: dict[str, list[tuple[float, int]]] = {name: [] for name in listings}
        read: dict[str, list[tuple[float, int]]] = {name: [] for name in reads}
        for _ in range(args.rounds):  # interleaved, so that a busy moment of the machine hits all alike
            for name, run in listings.items():
                listed[name].append(run())
            for name, run in reads.items():
                read[name].append(run())
        memory = {"mediamesh": rss_mb(mm.pid), "rclone": rss_mb(rc.pid), "WsgiDAV": rss_mb(wd.pid)}

        def median(runs: list[tuple[float, int]]) -> tuple[float, int]:
            return statistics.median(s for s, _ in runs), runs[0][1]

        print(f"\nPROPFIND Depth: 1 of a folder of {args.entries} entries (median of {args.rounds})")
        print(f"{'server':40} {'seconds':>8} {'entries/s':>10} {'MB sent':>8} {'vs rclone':>9}")
        reference = median(listed["rclone serve webdav PROPFIND"])[0]
        for name in listings:
            seconds, size = median(listed[name])
            print(
                f"{name:40} {seconds:8.3f} {args.entries / seconds:10.0f} {size / 1e6:8.2f} {reference / seconds:8.2f}x"
            )
        print(f"\nReading {args.gib} GiB (median of {args.rounds})")
        print(f"{'server':40} {'seconds':>8} {'MB/s':>8} {'vs rclone':>9}")
        reference = median(read["rclone serve webdav GET"])[0]
        for name in reads:
            seconds, size = median(read[name])
            print(f"{name:40} {seconds:8.3f} {size / 1e6 / seconds:8.0f} {reference / seconds:8.2f}x")
        print(
            f"\nmediamesh peak memory (VmHWM): {before:.0f} MB at start, {after_dav:.0f} MB after a /dav/ "
            f"PROPFIND of the folder, {after_api:.0f} MB after listing it through the JSON API"
        )
        print("resident memory after the runs (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in memory.items()))
        print('("vs rclone" above 1 is faster than rclone serve webdav.)')
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def serve_wsgidav(root: str, port: int) -> None:
    """WsgiDAV on ``root``, read-only and anonymous, mounted through a2wsgi as an ASGI app under uvicorn."""
    import uvicorn
    from a2wsgi import WSGIMiddleware
    from wsgidav.wsgidav_app import WsgiDAVApp  # type: ignore[import-untyped]

    config = {
        "provider_mapping": {"/": {"root": root, "readonly": True}},
        "simple_dc": {"user_mapping": {"*": True}},
        "verbose": 0,
        "logging": {"enable": False},
    }
    uvicorn.run(WSGIMiddleware(WsgiDAVApp(config)), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-wsgidav":
        serve_wsgidav(sys.argv[2], int(sys.argv[3]))
    else:
        main()
