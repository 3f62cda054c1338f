"""The live side of sources in a long-running process (``mediamesh serve``).

At start every registered source is restored in the background: connected and probed. Start-up never
waits for a source, and an unreachable one is marked offline and kept, with its configuration and files.
Then every source is probed on an interval; a probe of one hung source never delays another's.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mediamesh.catalog import scans as catalog_scans
from mediamesh.catalog.schema import sources
from mediamesh.context import Context
from mediamesh.errors import MediameshError
from mediamesh.services import bootstrap
from mediamesh.services.sources import backend_for, health_values, keep_kernel_mount, record_probe

log = logging.getLogger(__name__)


def recover_abandoned(ctx: Context) -> int:
    """At start: scans whose process is gone are marked interrupted (their jobs are taken up again by the
    job runner, which resumes them). Returns how many."""
    return catalog_scans.recover_abandoned(ctx.catalog)


class SourceManager:
    """Restores and probes every enabled source; the backends are the context's shared ones, so that a
    changed password reaches the probe as it reaches every other user of the source."""

    def __init__(self, ctx: Context, interval: float) -> None:
        self.ctx = ctx
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = cf.ThreadPoolExecutor(4, thread_name_prefix="mediamesh-probe")
        self.rounds = 0

    def start(self, sources_file: Path | None = None) -> None:
        """Returns at once. In the background: apply ``sources_file`` if given, restore every source (the
        first round), then probe every ``interval`` seconds."""
        self._thread = threading.Thread(
            target=self._run, args=(sources_file,), name="mediamesh-sources", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, sources_file: Path | None) -> None:
        if sources_file is not None:
            try:
                for result in bootstrap.apply(self.ctx, sources_file):
                    log.info(
                        "%s: source %s %s %s",
                        sources_file,
                        result["name"],
                        result["result"],
                        result.get("error", ""),
                    )
            except MediameshError as exc:
                log.error("%s was not applied: %s", sources_file, exc.message)
        while not self._stop.is_set():
            try:
                self.probe_all()
            except Exception:  # one bad round must not end the monitor
                log.exception("probing sources failed")
            self.rounds += 1
            self._stop.wait(self.interval)

    def probe_all(self) -> None:
        with self.ctx.catalog.read() as conn:
            rows = conn.execute(select(sources)).all()
        for row in rows:
            if not row.enabled:  # unmounted since the last round: nothing of it stays connected
                self.ctx.connections.reset(row.id)
                if (self.ctx.kernel_mounts.public(row.name) or {}).get("state") == "mounted":
                    self.ctx.kernel_mounts.unmount(row.name, row.location, forget=False)
        futures = [self._pool.submit(self._probe, row) for row in rows if row.enabled]
        for future in futures:
            future.result()

    def _probe(self, row: Any) -> None:
        keep_kernel_mount(self.ctx, row)  # restored at start, mounted again when stale
        probe = backend_for(self.ctx, row).probe()
        if not probe.reachable:
            self.ctx.connections.reset(row.id)  # reconnects on the next round
        state = "connected" if probe.reachable else "error"
        record_probe(self.ctx, row.id, health_values(row, probe), state, row.location, probe.error)
