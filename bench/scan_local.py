"""Benchmark: mediamesh scanning a local tree, side by side with ``find -printf`` and ``b3sum``.

Builds a tree (small files in folders of 100, plus a few large files), then on the same files in the same
run measures: hashing throughput on the large files against b3sum; a full index of the small files; a
no-change rescan against ``find -printf`` (which stats every file, as our rescan must); and a rename of
1,000 files. Prints a table with times, bytes read, peak RSS and ratios against the targets of issue #2.

    .venv/bin/python bench/scan_local.py                       # 200k small files + 3 x 1 GiB
    .venv/bin/python bench/scan_local.py --small 20000 --large 1 --large-mib 256   # quick
    .venv/bin/python bench/scan_local.py --rss-files 1000000   # also peak RSS while indexing 1M files
    .venv/bin/python bench/scan_local.py --baseline /tmp/old/src   # A/B: another checkout, same data

With ``--baseline SRC`` every mediamesh measurement is also made with the package in ``SRC`` (a checkout
of an earlier commit: ``git worktree add /tmp/old <commit>``), on the same files in the same run, and the
table shows both. ``until scan returns`` is the user-visible time of ``mediamesh scan`` on the small files
with a server to take enrichment (``--no-extract``, which is what the CLI does when a server is alive);
the baseline ran enrichment inside the command.

Every mediamesh run is a separate ``mediamesh scan --json`` process with a fresh data dir. Two times are
shown: the scan itself (from the scan record's start to its end) and the whole process (which adds about
0.7 s of Python start-up and imports). Peak RSS is that process's. Page cache is warm for both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import guard  # noqa: F401  - loopback only, in this process and those it starts

HERE = Path(__file__).resolve().parent
MEDIAMESH = [sys.executable, "-m", "mediamesh"]


@dataclass
class Run:
    seconds: float
    rss_mb: float
    output: str


def timed(cmd: list[str], env: dict[str, str] | None = None, stdout: int | None = subprocess.PIPE) -> Run:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {err.strip()[-500:]}")
    return Run(seconds, 0.0, out or "")


def timed_rss(cmd: list[str], env: dict[str, str]) -> Run:
    """Run a command, returning wall time and its peak RSS (from wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with {proc.returncode}: {out.decode()[-500:]}")
    return Run(seconds, usage.ru_maxrss / 1024, out.decode())


def build_small(root: Path, count: int, size: int) -> None:
    marker = root / f".built-{count}-{size}"
    if marker.exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for i in range(count):
        folder = root / f"d{i // 10000:03}" / f"s{i // 100 % 100:02}"
        if i % 100 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"img{i:07}.jpg").write_bytes(os.urandom(size))
    past = time.time() - 3600
    for dirpath, _, names in os.walk(root):
        for name in names:
            os.utime(os.path.join(dirpath, name), (past, past))
    marker.touch()


def build_large(root: Path, count: int, mib: int) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        p = root / f"clip{i}.mov"
        if not p.exists() or p.stat().st_size != mib << 20:
            with open(p, "wb") as fh:
                for _ in range(mib):
                    fh.write(os.urandom(1 << 20))
            past = time.time() - 3600
            os.utime(p, (past, past))
        paths.append(p)
    return paths


def warm(paths: list[Path]) -> None:
    for p in paths:
        with open(p, "rb") as fh:
            while fh.read(8 << 20):
                pass


#: The package under test: None for this checkout, else another checkout's src (see --baseline).
SOURCE: dict[str, str | None] = {"src": None}


def scan(data: Path, name: str, root: Path | None = None, *flags: str) -> tuple[Run, dict[str, Any]]:
    env = {**os.environ, "MEDIAMESH_DATA_DIR": str(data), "MEDIAMESH_SETTLE_SECONDS": "0",
           "MEDIAMESH_LOCAL_ROOTS": str(data.parent)}  # fmt: skip
    if SOURCE["src"] is not None:
        env["PYTHONPATH"] = SOURCE["src"]
    if root is not None:
        subprocess.run(
            [*MEDIAMESH, "source", "add", name, str(root)], env=env, check=True, capture_output=True
        )
    run = timed_rss([*MEDIAMESH, "scan", name, "--json", *flags], env)
    return run, json.loads(run.output)


def scan_seconds(summary: dict[str, Any]) -> float:
    """How long the scan itself took, from its record (excludes process start-up)."""
    start = datetime.fromisoformat(summary["started_at"])
    end = datetime.fromisoformat(summary["finished_at"])
    return (end - start).total_seconds()


def find_printf(root: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["find", str(root), "-type", "f", "-printf", "%s %T@ %i %p\n"], check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=HERE / ".work", help="where the tree and catalogs are made")
    ap.add_argument("--small", type=int, default=200_000, help="number of small files")
    ap.add_argument("--small-size", type=int, default=4096, help="bytes per small file")
    ap.add_argument("--large", type=int, default=3, help="number of large files")
    ap.add_argument("--large-mib", type=int, default=1024, help="MiB per large file")
    ap.add_argument("--renames", type=int, default=1000)
    ap.add_argument(
        "--rss-files", type=int, default=0, help="also index a tree of this many files for peak RSS"
    )
    ap.add_argument("--baseline", type=Path, help="also measure the package in this src dir (A/B)")
    args = ap.parse_args()
    for tool in ("b3sum", "find"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (make test installs it)")

    work: Path = args.dir
    small_root, large_root = work / "small", work / "large"
    print(
        f"building {args.small} small files and {args.large} x {args.large_mib} MiB in {work} ...", flush=True
    )
    build_small(small_root, args.small, args.small_size)
    large = build_large(large_root, args.large, args.large_mib)
    variants = [("current", None)] + ([("baseline", str(args.baseline))] if args.baseline else [])
    results: dict[str, dict[tuple[str, str], tuple[str, str, str, str]]] = {}
    order: list[tuple[str, str]] = []
    for variant, src in reversed(variants):  # the baseline first: the current code gets no warmer cache
        SOURCE["src"] = src
        print(f"measuring {variant} ...", flush=True)
        rows = measure(args, work, small_root, large_root, large, current=src is None)
        keyed, parent = {}, ""
        for r in rows:  # "  same, whole process" is under several measures: key it by its measure
            parent = parent if r[0].startswith("  ") else r[0]
            keyed[(parent, r[0])] = r[1:]
        results[variant] = keyed
    SOURCE["src"] = None
    for variant, _ in variants:  # the current code's order, then what only the baseline has
        order += [k for k in results[variant] if k not in order]

    names = [v for v, _ in variants]
    header = ("measure", *names, "reference", f"ratio ({names[0]})", "target")
    table = [
        (
            m[1],
            *(results[v].get(m, ("-",))[0] for v in names),
            *next(results[v][m][1:] for v in names if m in results[v]),
        )
        for m in order
    ]
    width = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    print()
    lines: list[tuple[str, ...]] = [header, tuple("-" * w for w in width), *table]
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, width, strict=True)))


def measure(
    args: argparse.Namespace, work: Path, small_root: Path, large_root: Path, large: list[Path], current: bool
) -> list[tuple[str, str, str, str, str]]:
    """Every measurement of one variant of the package (see SOURCE)."""
    rows: list[tuple[str, str, str, str, str]] = []

    # Large files: hashing throughput, b3sum vs mediamesh, both from a warm cache.
    warm(large)
    total = sum(p.stat().st_size for p in large)
    b3 = timed(["b3sum", "--no-names", *map(str, large)])
    data = work / "data-large"
    shutil.rmtree(data, ignore_errors=True)
    run, summary = scan(data, "large", large_root)
    assert summary["bytes_hashed"] == total, summary
    b3_gbs = total / b3.seconds / 1e9
    in_scan, whole = total / scan_seconds(summary) / 1e9, total / run.seconds / 1e9
    rows.append(
        (
            "hash large files (GB/s)",
            f"{in_scan:.2f}",
            f"b3sum {b3_gbs:.2f}",
            f"{in_scan / b3_gbs:.2f}x",
            ">= 0.8x",
        )
    )
    rows.append(
        ("  same, whole process", f"{whole:.2f}", f"b3sum {b3_gbs:.2f}", f"{whole / b3_gbs:.2f}x", "-")
    )

    # Small files: full index.
    files = args.small
    data = work / "data-small"
    shutil.rmtree(data, ignore_errors=True)
    find_printf(small_root)  # warm the dentry/inode cache for both sides
    full, summary = scan(data, "small", small_root, *(["--no-extract"] if current else []))
    assert summary["files_new"] == files, summary
    rows.append(("full index (files/s)", f"{files / scan_seconds(summary):,.0f}", "-", "-", ">= 20,000"))
    rows.append(("  same, whole process", f"{files / full.seconds:,.0f}", "-", "-", "-"))
    rows.append(("  until scan returns (s)", f"{full.seconds:.1f}", "-", "-", "the index alone"))
    rows.append(("  peak RSS (MB)", f"{full.rss_mb:.0f}", "-", "-", "<= 300 (1M files)"))
    if current:  # enrichment, in the command as without a server (after a no-change rescan)
        enriched, summary = scan(data, "small")
        seconds = (summary.get("enrichment") or {}).get("seconds")
        rows.append(("  enrichment in the CLI (s)", f"{seconds or 0:.1f}", "-", "-", "-"))
        rows.append(("  peak RSS with enrichment (MB)", f"{enriched.rss_mb:.0f}", "-", "-", "<= 300"))

    # No-change rescan vs find -printf.
    find_s = min(find_printf(small_root) for _ in range(3))
    rescan, summary = scan(data, "small")
    assert summary["files_unchanged"] == files and summary["files_new"] == 0, summary
    in_scan = scan_seconds(summary)
    rows.append(
        ("no-change rescan (s)", f"{in_scan:.2f}", f"find {find_s:.2f}", f"{in_scan / find_s:.2f}x", "<= 3x")
    )
    whole_ratio = f"{rescan.seconds / find_s:.2f}x"
    rows.append(("  same, whole process", f"{rescan.seconds:.2f}", f"find {find_s:.2f}", whole_ratio, "-"))
    rows.append(("  bytes read", f"{summary['bytes_read']}", "-", "-", "0"))

    # Rename 1,000 files.
    renamed = 0
    for dirpath, _, names in sorted(os.walk(small_root)):
        for name in sorted(names):
            if renamed >= args.renames or not name.endswith(".jpg"):
                continue
            os.rename(os.path.join(dirpath, name), os.path.join(dirpath, "r-" + name))
            renamed += 1
    _, summary = scan(data, "small")
    rows.append(("rename 1,000 (s)", f"{scan_seconds(summary):.2f}", "-", "-", "-"))
    rows.append(
        (
            "  files moved / bytes read",
            f"{summary['files_moved']} / {summary['bytes_read']}",
            "-",
            "-",
            f"{renamed} / 0",
        )
    )
    for dirpath, _, names in os.walk(small_root):  # rename back so the tree can be reused
        for name in names:
            if name.startswith("r-"):
                os.rename(os.path.join(dirpath, name), os.path.join(dirpath, name[2:]))

    if args.rss_files:
        big_root = work / f"tree-{args.rss_files}"
        build_small(big_root, args.rss_files, 64)
        data = work / "data-rss"
        shutil.rmtree(data, ignore_errors=True)
        run, summary = scan(data, "million", big_root, *(["--no-extract"] if current else []))
        assert summary["files_new"] == args.rss_files, summary
        rows.append(
            (f"index {args.rss_files:,} files: peak RSS (MB)", f"{run.rss_mb:.0f}", "-", "-", "<= 300")
        )
        rows.append(("  files/s", f"{args.rss_files / run.seconds:,.0f}", "-", "-", "-"))
    return rows


if __name__ == "__main__":
    main()
