"""Benchmark: the LAN API answering media queries over a catalog of 1M media, under load from ``wrk``.

Generates the catalog directly into SQLite (three sources: an online NAS, an offline NAS and a local disk;
a third of the media with a second copy, a few missing), starts ``mediamesh serve`` (one uvicorn worker)
on 127.0.0.1, and runs Debian's ``wrk`` from a separate process against each query, 50-item pages.
Prints requests/s and latency percentiles per query, and the targets of the API issue (p95 <= 50 ms,
>= 500 requests/s).

    .venv/bin/python bench/api.py                     # 1M media
    .venv/bin/python bench/api.py --media 100000 --seconds 5   # quick
    .venv/bin/python bench/api.py --media 200000 --baseline /tmp/old/src --rounds 2   # A/B

With ``--baseline SRC`` the same catalog is generated for the package in ``SRC`` too (a checkout of an
earlier commit), and each round measures both servers one after the other; the table shows both.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import guard  # noqa: F401  - loopback only, in this process and those it starts

HERE = Path(__file__).resolve().parent
WORDS = [
    "wedding", "interview", "drone", "sunset", "concert", "studio", "beach", "portrait", "timelapse",
    "broll", "keynote", "rehearsal", "mountain", "harbour", "garden", "kitchen", "festival", "archive",
]  # fmt: skip
KINDS = [("mp4", "video"), ("mov", "video"), ("jpg", "image"), ("cr3", "image"), ("wav", "audio")]
NOW = "2026-01-01 00:00:00.000000"

QUERIES = [
    ("first page", "/api/v1/media?limit=50"),
    ("page 20 (cursor)", None),  # filled in with a real cursor
    ("one source", "/api/v1/media?source=nas19&limit=50"),
    ("kind=video", "/api/v1/media?kind=video&limit=50"),
    ("on offline sources only", "/api/v1/media?state=offline&limit=50"),
    ("single copy", "/api/v1/media?single_copy=true&limit=50"),
    ("duplicates", "/api/v1/media?duplicates=true&limit=50"),
    ("text search", "/api/v1/media?q=wedding&limit=50"),
    ("text search, 2 words", "/api/v1/media?q=drone%20sunset&limit=50"),
    ("text search, prefix", "/api/v1/media?q=interv*&limit=50"),
    ("search + source + kind", "/api/v1/media?q=studio&source=nas19&kind=image&limit=50"),
]

WRK_SCRIPT = """
wrk.headers["Authorization"] = "Bearer %s"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%.1f %%.1f %%.1f %%.1f\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout,
    summary.duration, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def generate(db: Path, count: int, seed: int = 7) -> None:
    """Rows straight into the catalog (already migrated), as a scan would have left them."""
    rng = random.Random(seed)
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    # The server probes every source when it starts: only loopback and folders of this run, never a LAN
    # address. "nas19" is a folder here (online); "nas25" an SMB share on a closed loopback port (offline).
    # Beside the data dir, never in it: a source may not hold mediamesh's own data (MEDIAMESH_LOCAL_ROOTS).
    online_root = db.parent.with_name(db.parent.name + "-nas19")
    online_root.mkdir(exist_ok=True)
    local_root = db.parent.with_name(db.parent.name + "-local")
    local_root.mkdir(exist_ok=True)
    sources = [(1, "nas19", "local", str(online_root), "online"),
               (2, "nas25", "smb", "smb://media@127.0.0.1:9/photo", "offline"),
               (3, "local", "local", str(local_root), "online")]  # fmt: skip
    for sid, name, kind, location, health in sources:
        con.execute(
            "INSERT INTO sources (id, name, kind, location, enabled, options, identity, health_status,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, 1, '{}', '{}', ?, ?, ?)",
            (sid, name, kind, location, health, NOW, NOW),
        )
    media_rows: list[tuple[object, ...]] = []
    file_rows: list[tuple[object, ...]] = []
    for i in range(count):
        media_id = hashlib.blake2b(i.to_bytes(8, "little"), digest_size=32).hexdigest()
        ext, kind = rng.choice(KINDS)
        size = rng.randrange(100_000, 4_000_000_000)
        media_rows.append((media_id, size, kind, NOW))
        copies = [rng.choices([1, 2, 3], weights=[60, 25, 15])[0]]
        if rng.random() < 0.33:
            copies.append(rng.choice([s for s in (1, 2, 3) if s != copies[0]]))
        for n, sid in enumerate(copies):
            folder = f"Projects/{rng.choice(WORDS).title()}-{2015 + i % 10}/{rng.choice(WORDS)}"
            name = f"{rng.choice(WORDS)}_{i:07d}{'_copy' if n else ''}.{ext}"
            state = "missing" if rng.random() < 0.02 else "present"
            file_rows.append(
                (sid, f"{folder}/{name}", folder.lower(), name.lower(), size, 1_600_000_000_000_000_000 + i,
                 None, media_id[:32], media_id, state, NOW, NOW)
            )  # fmt: skip
        if len(media_rows) >= 50_000:
            _flush(con, media_rows, file_rows)
    _flush(con, media_rows, file_rows)
    con.execute("ANALYZE")
    con.commit()
    con.close()


def _flush(
    con: sqlite3.Connection, media_rows: list[tuple[object, ...]], files: list[tuple[object, ...]]
) -> None:
    con.executemany("INSERT INTO media (id, size, kind, first_seen) VALUES (?, ?, ?, ?)", media_rows)
    con.executemany(
        "INSERT INTO files (source_id, path, dir_key, name_key, size, mtime_ns, file_id, quick_fp, media_id,"
        " state, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        files,
    )
    con.commit()
    media_rows.clear()
    files.clear()


def prepare(data_dir: Path | str, count: int, scope: str, templates: tuple[str, ...] = ()) -> str:
    """The catalog in data_dir, generated unless it is there already (``--keep``); a new token's value."""
    from mediamesh.config import Settings
    from mediamesh.context import Context
    from mediamesh.services.projects import add_template
    from mediamesh.services.tokens import create_token

    data_dir = Path(data_dir)
    fresh = not (data_dir / "catalog.db").exists()
    ctx = Context(Settings(data_dir=data_dir, health_interval=3600))
    try:
        if fresh:
            started = time.perf_counter()
            generate(data_dir / "catalog.db", count)
            for template in templates:
                add_template(ctx, template)
            print(f"generated {count:,} media in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        return create_token(ctx, "bench", scope)[1]
    finally:
        ctx.close()


def prepare_with(src: str, data_dir: Path, count: int) -> str:
    """``prepare`` run with the package in ``src`` (its own migrations make the catalog)."""
    code = f"import sys; sys.path[:0] = [{src!r}, {str(HERE)!r}]; import api; print(api.prepare({str(data_dir)!r}, {count}, 'read'))"
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def start_server(data_dir: Path, port: int, src: str | None = None) -> subprocess.Popen[bytes]:
    """``mediamesh serve`` on 127.0.0.1 over this data dir (one uvicorn worker, no health probes)."""
    env = {**os.environ, "MEDIAMESH_DATA_DIR": str(data_dir), "MEDIAMESH_HOST": "127.0.0.1",
           "MEDIAMESH_PORT": str(port), "MEDIAMESH_HEALTH_INTERVAL": "3600",
           "MEDIAMESH_LOCAL_ROOTS": str(data_dir.parent)}  # fmt: skip
    if src is not None:
        env["PYTHONPATH"] = src
    return subprocess.Popen(
        [sys.executable, "-m", "mediamesh", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def fetch(url: str, token: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--media", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--port", type=int, default=18470)
    parser.add_argument("--keep", type=Path, help="reuse (or keep) the generated data dirs here")
    parser.add_argument("--baseline", type=Path, help="also measure the package in this src dir (A/B)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds (the best of each query is shown)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: scripts/install-system-deps.sh bench (Debian's wrk)")

    root = args.keep or Path(tempfile.mkdtemp(prefix="mediamesh-bench-api-"))
    variants: list[tuple[str, str | None]] = [("current", None)]
    if args.baseline is not None:
        variants.insert(0, ("baseline", str(args.baseline)))
    tokens = {}
    for name, src in variants:
        data_dir = root / name
        tokens[name] = (
            prepare(data_dir, args.media, "read") if src is None else prepare_with(src, data_dir, args.media)
        )
    results: dict[str, list[list[tuple[str, int, int, float, float, float, float, int]]]] = {}
    try:
        for round_ in range(args.rounds):  # the order alternates: the second server of a pair runs warmer
            for name, src in variants if round_ % 2 == 0 else variants[::-1]:
                results.setdefault(name, []).append(measure(root / name, tokens[name], src, args))
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)

    print(
        f"\nmediamesh API, {args.media:,} media, 1 uvicorn worker, wrk -c{args.connections}, {args.seconds} s each, "
        f"best of {args.rounds} round(s)"
    )
    names = [n for n, _ in variants]
    head = "".join(f" {n + ' req/s':>16} {'p95 ms':>7}" for n in names)
    print(f"{'query':<26} {'rows':>5} {'count':>9}{head}  {'ratio':>6}  target met?")
    for i, (label, n, count, *_rest) in enumerate(results[names[-1]][0]):
        best = {name: max((r[i] for r in results[name]), key=lambda row: row[3]) for name in names}
        cells = "".join(f" {best[name][3]:>16,.0f} {best[name][5]:>7.1f}" for name in names)
        ratio = best[names[-1]][3] / best[names[0]][3] if len(names) > 1 else 1.0
        cur = best[names[-1]]
        met = "yes" if cur[5] <= 50 and cur[3] >= 500 and cur[7] == 0 else "no"
        print(f"{label:<26} {n:>5} {count:>9,}{cells}  {ratio:>5.2f}x  {met}")
    print("\ntargets: p95 <= 50 ms and >= 500 requests/s per query (issue #4); ratio: current / baseline")


def measure(
    data_dir: Path, token: str, src: str | None, args: argparse.Namespace
) -> list[tuple[str, int, int, float, float, float, float, int]]:
    """Every query of QUERIES under wrk against one server; (label, rows, count, req/s, p50, p95, p99, errors)."""
    server = start_server(data_dir, args.port, src)
    base = f"http://127.0.0.1:{args.port}"
    rows = []
    try:
        wait_for(base + "/api/v1/health")
        cursor_url = "/api/v1/media?limit=50"
        for _ in range(19):
            page = fetch(base + cursor_url, token)
            cursor_url = f"/api/v1/media?limit=50&cursor={page['next']}"
        script = Path(tempfile.mkstemp(suffix=".lua")[1])
        script.write_text(WRK_SCRIPT % token)
        for label, query in QUERIES:
            path = query or cursor_url
            sample = fetch(base + path, token)
            out = subprocess.run(
                ["wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "-s", str(script), base + path],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            result = next(line for line in out.splitlines() if line.startswith("RESULT")).split()[1:]
            requests, errors = int(result[0]), int(result[1])
            seconds = float(result[2]) / 1e6
            p50, p95, p99 = (float(x) for x in result[3:6])
            rows.append(
                (label, len(sample["data"]), sample["count"], requests / seconds, p50, p95, p99, errors)
            )
    finally:
        server.terminate()
        server.wait(30)
    return rows


if __name__ == "__main__":
    main()
