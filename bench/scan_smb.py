"""Benchmark: mediamesh reading an SMB share, side by side with rclone and smbclient, on one local smbd.

Starts a private Samba server on 127.0.0.1 (as the tests do), builds a tree on its share, then measures on
the same files: listing the whole tree (mediamesh's backend walk vs ``rclone lsjson -R``) and reading +
hashing large files (mediamesh vs ``smbclient -c 'get FILE /dev/null'``, which only reads). Also a full
``mediamesh scan`` of the small files, for information.

    .venv/bin/python bench/scan_smb.py                           # 20k small files + 2 x 512 MiB
    .venv/bin/python bench/scan_smb.py --small 5000 --large-mib 256
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import guard  # noqa: F401  - loopback only, in this process and those it starts

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.servers.samba: the same server the tests use

from tests.servers.samba import PASSWORD, SHARE, USER, SambaServer  # noqa: E402

from mediamesh.backends.base import BackendError  # noqa: E402
from mediamesh.backends.smb import SmbBackend, SmbOptions  # noqa: E402
from mediamesh.scanning.hashing import hash_stream  # noqa: E402


def build(share: Path, small: int, large: int, large_mib: int) -> list[str]:
    for i in range(small):
        folder = share / "small" / f"d{i // 100:04}"
        if i % 100 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"img{i:07}.jpg").write_bytes(os.urandom(2048))
    names = []
    (share / "large").mkdir(exist_ok=True)
    for i in range(large):
        path = share / "large" / f"clip{i}.mov"
        with open(path, "wb") as fh:
            for _ in range(large_mib):
                fh.write(os.urandom(1 << 20))
        names.append(f"large/clip{i}.mov")
    past = time.time() - 3600
    for dirpath, _, files in os.walk(share):
        for f in files:
            os.utime(os.path.join(dirpath, f), (past, past))
    return names


def best(runs: int, fn: object) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times)


def scan_rows(work: Path, url: str, password: str | None, files: int) -> list[tuple[str, str, str, str, str]]:
    """A first ``mediamesh scan`` (the index only) of ``files`` files at ``url``, and a rescan, as rows."""
    environ = {**os.environ, "MEDIAMESH_DATA_DIR": str(work / "data"), "MEDIAMESH_SETTLE_SECONDS": "0"}
    cli = [sys.executable, "-m", "mediamesh"]
    add = [*cli, "source", "add", "bench", url] + (["--password-stdin"] if password else [])
    given = password + "\n" if password else ""
    subprocess.run(add, input=given, text=True, env=environ, check=True, capture_output=True)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        out = subprocess.run([*cli, "scan", "bench", "--json", "--no-extract"], env=environ, check=True,
                             capture_output=True, text=True).stdout  # fmt: skip
        times.append(time.perf_counter() - t0)
        summary = json.loads(out)
        assert summary["status"] == "completed" and summary["files_seen"] == files, out[-500:]
    return [
        ("first scan, small files (files/s)", f"{files / times[0]:,.0f}", "-", "-", "-"),
        ("no-change rescan (files/s)", f"{files / times[1]:,.0f}", "-", "-", "-"),
    ]


def print_table(rows: list[tuple[str, str, str, str, str]]) -> None:
    header = ("measure", "mediamesh", "reference", "ratio", "target")
    width = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    print()
    for r in [header, tuple("-" * w for w in width), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, width, strict=True)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=20_000)
    ap.add_argument("--large", type=int, default=2)
    ap.add_argument("--large-mib", type=int, default=512)
    args = ap.parse_args()
    for tool in ("smbd", "rclone", "smbclient"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} is needed: scripts/install-system-deps.sh bench")

    work = Path(tempfile.mkdtemp(prefix="mm-bench-smb-"))
    server = SambaServer(work).start()
    try:
        print(f"building {args.small} small files and {args.large} x {args.large_mib} MiB ...", flush=True)
        large = build(server.share_dir, args.small, args.large, args.large_mib)
        backend = SmbBackend(SmbOptions.parse(server.url()), PASSWORD)
        rows: list[tuple[str, str, str, str, str]] = []

        def walk() -> int:
            n = 0
            for _, listing in backend.walk("small"):
                assert not isinstance(listing, BackendError), listing
                n += len(listing)
            return n

        entries = walk()  # warm the server's caches for both sides
        ours = best(3, walk)
        obscured = subprocess.run(
            ["rclone", "obscure", PASSWORD], capture_output=True, text=True, check=True
        ).stdout.strip()
        rclone = [
            "rclone",
            "lsjson",
            "-R",
            "--smb-host",
            "127.0.0.1",
            "--smb-port",
            str(server.port),
            "--smb-user",
            USER,
            "--smb-pass",
            obscured,
            f":smb:{SHARE}/small",
        ]
        env = {**os.environ, "RCLONE_CONFIG": "/dev/null"}
        theirs = best(3, lambda: subprocess.run(rclone, env=env, check=True, capture_output=True))
        rows.append(
            (
                "list (entries/s)",
                f"{entries / ours:,.0f}",
                f"rclone {entries / theirs:,.0f}",
                f"{theirs / ours:.2f}x",
                ">= 1.0x",
            )
        )

        total = sum((server.share_dir / name).stat().st_size for name in large)

        def hash_all() -> None:
            for name in large:
                with backend.open(name) as fh:
                    _, read = hash_stream(fh)
                    assert read == (server.share_dir / name).stat().st_size

        def smbclient_get() -> None:
            cmds = "; ".join(f"get {name.replace('/', chr(92))} /dev/null" for name in large)
            subprocess.run(
                [
                    "smbclient",
                    f"//127.0.0.1/{SHARE}",
                    "-p",
                    str(server.port),
                    "-U",
                    f"{USER}%{PASSWORD}",
                    "-c",
                    cmds,
                ],
                check=True,
                capture_output=True,
            )

        ours = best(2, hash_all)
        theirs = best(2, smbclient_get)
        rows.append(
            (
                "read + hash large (MB/s)",
                f"{total / ours / 1e6:,.0f}",
                f"smbclient get {total / theirs / 1e6:,.0f}",
                f"{theirs / ours:.2f}x",
                ">= 0.7x",
            )
        )
        backend.close()

        rows.extend(scan_rows(work, server.url("small"), PASSWORD, args.small))

        print_table(rows)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
