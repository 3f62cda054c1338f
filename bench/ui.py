"""Benchmark: how fast the web UI's pages answer on a catalog of 100k media (target: under 300 ms).

Generates the catalog as bench/api.py does (three sources, a third of the media with a second copy),
adds the template ``Projects/{project}/**`` (about 180 projects), starts ``mediamesh serve`` on 127.0.0.1,
signs in like a browser and fetches every page many times, one after another. Where a page shows what an
API query returns, that query's JSON is timed side by side: the ratio is the cost of rendering HTML.

    .venv/bin/python bench/ui.py                  # 100k media
    .venv/bin/python bench/ui.py --media 20000    # quick
"""

from __future__ import annotations

import argparse
import http.client
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import guard  # noqa: F401  - loopback only, in this process and those it starts

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api import prepare, start_server, wait_for

#: (label, page, the API query showing the same data or None)
PAGES = [
    ("dashboard", "/", "/api/v1/sources"),
    ("dashboard live update", "/ui/live/dashboard", "/api/v1/sources"),
    ("media, first page", "/media", "/api/v1/media?limit=60"),
    ("media, next page (scroll)", None, None),  # filled in with a real cursor
    ("media, text search", "/media?q=wedding", "/api/v1/media?q=wedding&limit=60"),
    ("media, source + kind", "/media?source=nas19&kind=video", "/api/v1/media?source=nas19&kind=video&limit=60"),
    ("media, duplicates", "/media?view=duplicates", "/api/v1/media?duplicates=true&limit=60"),
    ("media, offline only", "/media?view=offline", "/api/v1/media?state=offline&limit=60"),
    ("media detail", None, None),
    ("projects", "/projects", "/api/v1/projects"),
    ("one project", None, None),
    ("tokens", "/tokens", "/api/v1/tokens"),
    ("edit source", "/sources/nas19/edit", "/api/v1/sources/nas19"),
]  # fmt: skip


class Client:
    """One keep-alive connection, like a browser tab."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers: dict[str, str] = {}

    def get(self, path: str) -> tuple[int, bytes, float]:
        try:
            return self._get(path)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed a connection left idle (keep-alive timeout): a browser reconnects too.
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.conn.connect()
            return self._get(path)

    def _get(self, path: str) -> tuple[int, bytes, float]:
        started = time.perf_counter()
        self.conn.request("GET", path, headers=self.headers)
        response = self.conn.getresponse()
        body = response.read()
        return response.status, body, (time.perf_counter() - started) * 1000

    def sign_in(self, token: str) -> None:
        body = urlencode({"token": token})
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        self.conn.request("POST", "/sign-in", body=body, headers=headers)
        response = self.conn.getresponse()
        response.read()
        cookie = response.getheader("set-cookie") or ""
        if response.status != 303 or "mm_session=" not in cookie:
            sys.exit(f"sign-in failed: {response.status}")
        self.headers = {"Cookie": cookie.split(";", 1)[0]}


def timed(client: Client, path: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        status, _, ms = client.get(path)
        if status != 200:
            sys.exit(f"{path} answered {status}")
        times.append(ms)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--media", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--port", type=int, default=18471)
    parser.add_argument("--keep", type=Path, help="reuse (or keep) the generated data dir here")
    args = parser.parse_args()

    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="mediamesh-bench-ui-"))
    token = prepare(data_dir, args.media, "admin", templates=("Projects/{project}/**",))

    server = start_server(data_dir, args.port)
    rows = []
    try:
        wait_for(f"http://127.0.0.1:{args.port}/api/v1/health")
        browser = Client(args.port)
        browser.sign_in(token)
        api = Client(args.port)
        api.headers = {"Authorization": f"Bearer {token}"}
        first = browser.get("/media")[1].decode()
        more = re.search(r'data-more="([^"]+)"', first)
        media_id = re.search(r'href="/media/([0-9a-f]{64})"', first)
        # From the API, so that the UI's first visit of /projects below is really its first.
        project = re.search(r'"name":\s*"([^"]+)"', api.get("/api/v1/projects")[1].decode())
        assert more and media_id and project, "the pages lack what the benchmark follows"
        filled = {
            "media, next page (scroll)": (more.group(1).replace("&amp;", "&"), None),
            "media detail": (f"/media/{media_id.group(1)}", f"/api/v1/media/{media_id.group(1)}"),
            "one project": (f"/projects/{project.group(1)}", f"/api/v1/projects/{project.group(1)}/media?limit=60"),
        }  # fmt: skip
        for label, listed_page, listed_query in PAGES:
            page, query = (listed_page, listed_query) if listed_page else filled[label]
            first_ms = timed(browser, page, 1)[0]  # the first visit: what nothing has cached yet
            page_ms = timed(browser, page, args.runs)
            api_ms = timed(api, query, args.runs) if query else None
            rows.append((label, first_ms, page_ms, api_ms))
    finally:
        server.terminate()
        server.wait(30)
        if args.keep is None:
            shutil.rmtree(data_dir, ignore_errors=True)

    print(f"\nmediamesh web UI, {args.media:,} media, 1 uvicorn worker, {args.runs} sequential requests each")
    print(
        f"{'page':<28} {'first':>7} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'API p50':>8} {'page/API':>8}  < 300 ms?"
    )
    for label, first_ms, page_ms, api_ms in rows:
        p50 = statistics.median(page_ms)
        p95 = statistics.quantiles(page_ms, n=20)[18] if len(page_ms) >= 2 else page_ms[0]
        api50 = statistics.median(api_ms) if api_ms else None
        ratio = f"{p50 / api50:>8.2f}" if api50 else f"{'–':>8}"
        api_text = f"{api50:>8.1f}" if api50 is not None else f"{'–':>8}"
        met = "yes" if max(first_ms, *page_ms) < 300 else "p95 yes" if p95 < 300 else "no"
        print(
            f"{label:<28} {first_ms:>7.1f} {p50:>7.1f} {p95:>7.1f} {max(page_ms):>7.1f} {api_text} {ratio}  {met}"
        )
    print(
        "\ntarget: every page under 300 ms on 100k media (issue #7). 'first' is the first visit after the"
        " server started;\nthe percentiles are the visits after it. The API column is the same data as JSON."
    )


if __name__ == "__main__":
    main()
