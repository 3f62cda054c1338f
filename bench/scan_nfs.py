"""Benchmark: mediamesh reading an NFS export, side by side with libnfs's tools, on one local nfs-ganesha.

Starts a private nfs-ganesha on 127.0.0.1 (NFSv4, as the tests do), builds a tree in its export, then
measures on the same files: listing the whole tree (mediamesh's backend walk vs ``nfs-ls -R``) and
reading + hashing large files (mediamesh vs ``nfs-cat > /dev/null``, which only reads). Both clients speak
NFSv4 to the same server; nfs-ls and nfs-cat are libnfs, the other candidate client (docs/sources.md).
Also a first ``mediamesh scan`` of the small files, files/s.

    .venv/bin/python bench/scan_nfs.py                           # 20k small files + 2 x 512 MiB
    .venv/bin/python bench/scan_nfs.py --small 5000 --large-mib 256
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import guard  # noqa: F401  - loopback only, in this process and those it starts

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.servers.ganesha: the same server the tests use

from tests.servers.ganesha import EXPORT, GaneshaServer  # noqa: E402

from mediamesh.backends.base import BackendError  # noqa: E402
from mediamesh.backends.nfs import NfsBackend, NfsOptions  # noqa: E402
from mediamesh.scanning.hashing import hash_stream  # noqa: E402
from scan_smb import best, build, print_table, scan_rows  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=20_000)
    ap.add_argument("--large", type=int, default=2)
    ap.add_argument("--large-mib", type=int, default=512)
    args = ap.parse_args()
    for tool in ("ganesha.nfsd", "nfs-ls", "nfs-cat"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed: scripts/install-system-deps.sh bench")

    work = Path(tempfile.mkdtemp(prefix="mm-bench-nfs-"))
    server = GaneshaServer(work).start()
    try:
        print(f"building {args.small} small files and {args.large} x {args.large_mib} MiB ...", flush=True)
        large = build(server.share_dir, args.small, args.large, args.large_mib)
        backend = NfsBackend(NfsOptions.parse(server.url()))
        libnfs = f"nfs://127.0.0.1/{EXPORT}/{{}}?version=4&nfsport={server.port}"
        rows: list[tuple[str, str, str, str, str]] = []

        def walk() -> int:
            n = 0
            for _, listing in backend.walk("small"):
                assert not isinstance(listing, BackendError), listing
                n += len(listing)
            return n

        entries = walk()  # warm the server's caches for both sides
        ours = best(3, walk)
        theirs = best(
            3,
            lambda: subprocess.run(["nfs-ls", "-R", libnfs.format("small")], check=True, capture_output=True),
        )
        rows.append(
            ("list (entries/s)", f"{entries / ours:,.0f}", f"nfs-ls -R {entries / theirs:,.0f}",
             f"{theirs / ours:.2f}x", ">= 1.0x")
        )  # fmt: skip

        total = sum((server.share_dir / name).stat().st_size for name in large)

        def hash_all() -> None:
            for name in large:
                with backend.open(name) as fh:
                    _, read = hash_stream(fh, backend.read_size)
                    assert read == (server.share_dir / name).stat().st_size

        def nfs_cat() -> None:
            for name in large:
                with open(os.devnull, "wb") as null:
                    subprocess.run(["nfs-cat", libnfs.format(name)], stdout=null, check=True)

        def read_all() -> None:
            buf = bytearray(backend.read_size)
            for name in large:
                with backend.open(name) as fh:
                    while fh.readinto(buf):  # type: ignore[attr-defined]
                        pass

        hash_all()  # the server's page cache warm for both sides
        ours = best(3, hash_all)
        theirs = best(3, nfs_cat)
        only_read = best(3, read_all)
        rows.append(
            ("read + hash large (MB/s)", f"{total / ours / 1e6:,.0f}", f"nfs-cat {total / theirs / 1e6:,.0f}",
             f"{theirs / ours:.2f}x", ">= 0.8x")
        )  # fmt: skip
        rows.append(
            ("  read only, no hash (MB/s)", f"{total / only_read / 1e6:,.0f}", f"nfs-cat {total / theirs / 1e6:,.0f}",
             f"{theirs / only_read:.2f}x", "-")
        )  # fmt: skip
        backend.close()

        rows.extend(scan_rows(work, server.url("small"), None, args.small))

        print_table(rows)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
