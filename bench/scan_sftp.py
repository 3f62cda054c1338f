"""Benchmark: mediamesh reading an SFTP folder, side by side with rclone and OpenSSH, on one local sshd.

Starts a private OpenSSH server on 127.0.0.1 (as the tests do), builds a tree in its folder, then measures
on the same files: listing the whole tree (mediamesh's backend walk vs ``rclone lsjson -R`` with its sftp
backend), reading + hashing large files (mediamesh vs OpenSSH ``sftp`` getting them to /dev/null, which
only reads), and hashing them on the server (mediamesh's content_hash vs ``ssh host b3sum``), with the
bytes that crossed the link. Also a first ``mediamesh scan`` of the small files, files/s.

    .venv/bin/python bench/scan_sftp.py                           # 20k small files + 2 x 512 MiB
    .venv/bin/python bench/scan_sftp.py --small 5000 --large-mib 256
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import guard  # noqa: F401  - loopback only, in this process and those it starts

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.servers.openssh: the same server the tests use

from tests.servers.openssh import PASSWORD, USER, SshServer  # noqa: E402

from mediamesh.backends.base import BackendError  # noqa: E402
from mediamesh.backends.sftp import SftpBackend, SftpOptions  # noqa: E402
from mediamesh.scanning.hashing import hash_stream  # noqa: E402
from scan_smb import best, build, print_table, scan_rows  # noqa: E402


def link_bytes(port: int) -> int:
    """Bytes received by this machine's sockets from the server's port so far (ss: bytes_received)."""
    out = subprocess.run(
        ["ss", "-tin", f"sport = :{port}"], check=False, capture_output=True, text=True
    ).stdout
    return sum(int(tok.split(":")[1]) for tok in out.split() if tok.startswith("bytes_acked:"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=20_000)
    ap.add_argument("--large", type=int, default=2)
    ap.add_argument("--large-mib", type=int, default=512)
    args = ap.parse_args()
    for tool in ("sshd", "rclone", "sftp", "ssh", "b3sum"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} is needed: scripts/install-system-deps.sh bench")

    server = SshServer().start()
    work = server.workdir
    ssh_opts = [
        "-i",
        str(server.client_key),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
    ]
    try:
        print(f"building {args.small} small files and {args.large} x {args.large_mib} MiB ...", flush=True)
        large = build(server.share_dir, args.small, args.large, args.large_mib)
        for dirpath, dirs, _ in os.walk(server.share_dir):
            for d in dirs:
                os.chmod(os.path.join(dirpath, d), 0o755)
        backend = SftpBackend(SftpOptions.parse(server.url()), {"password": PASSWORD})
        rows: list[tuple[str, str, str, str, str]] = []

        def walk() -> int:
            n = 0
            for _, listing in backend.walk("small"):
                assert not isinstance(listing, BackendError), listing
                n += len(listing)
            return n

        entries = walk()  # warm the server's caches for both sides
        ours = best(3, walk)
        rclone = [
            "rclone", "lsjson", "-R", "--sftp-host", "127.0.0.1", "--sftp-port", str(server.port),
            "--sftp-user", USER, "--sftp-key-file", str(server.client_key), "--sftp-known-hosts-file", "",
            f":sftp:{server.share_dir}/small",
        ]  # fmt: skip
        env = {**os.environ, "RCLONE_CONFIG": "/dev/null"}
        theirs = best(3, lambda: subprocess.run(rclone, env=env, check=True, capture_output=True))
        rows.append(
            ("list (entries/s)", f"{entries / ours:,.0f}", f"rclone {entries / theirs:,.0f}",
             f"{theirs / ours:.2f}x", ">= 1.0x")
        )  # fmt: skip

        total = sum((server.share_dir / name).stat().st_size for name in large)

        def hash_all() -> None:
            for name in large:
                with backend.open(name) as fh:
                    _, read = hash_stream(fh)
                    assert read == (server.share_dir / name).stat().st_size

        def sftp_get() -> None:
            batch = "".join(f"get {server.share_dir}/{name} /dev/null\n" for name in large)
            subprocess.run(
                ["sftp", "-q", *ssh_opts, "-P", str(server.port), "-b", "-", f"{USER}@127.0.0.1"],
                input=batch, text=True, check=True, capture_output=True,
            )  # fmt: skip

        ours = best(2, hash_all)
        theirs = best(2, sftp_get)
        rows.append(
            ("read + hash large (MB/s)", f"{total / ours / 1e6:,.0f}", f"sftp get {total / theirs / 1e6:,.0f}",
             f"{theirs / ours:.2f}x", ">= 0.7x")
        )  # fmt: skip

        def remote_all() -> None:
            for name in large:
                digest = backend.content_hash(name, (server.share_dir / name).stat().st_size)
                assert digest is not None and len(digest) == 64

        def ssh_b3sum() -> None:
            paths = [f"{server.share_dir}/{name}" for name in large]
            subprocess.run(
                ["ssh", *ssh_opts, "-p", str(server.port), f"{USER}@127.0.0.1", "b3sum", *paths],
                check=True, capture_output=True,
            )  # fmt: skip

        remote_all()
        before = link_bytes(server.port)
        ours = best(2, remote_all)
        moved = (link_bytes(server.port) - before) // 2
        theirs = best(2, ssh_b3sum)
        rows.append(
            ("hash on the server (s)", f"{ours:.2f}", f"ssh b3sum {theirs:.2f}", f"{theirs / ours:.2f}x", "-")
        )
        rows.append(("  bytes over the link", f"{moved:,}", f"of {total:,} hashed", "-", "~0"))
        backend.close()

        rows.extend(scan_rows(work, server.url("small"), PASSWORD, args.small))

        print_table(rows)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
