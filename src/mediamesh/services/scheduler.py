"""The thread of ``mediamesh serve`` that starts scheduled scans (see services/schedule.py)."""

from __future__ import annotations

import logging
import threading

from mediamesh.context import Context
from mediamesh.errors import Conflict, MediameshError
from mediamesh.services.scan_runner import ScanQueue
from mediamesh.services.schedule import due_sources

log = logging.getLogger(__name__)


class Scheduler:
    """A thread of ``serve`` that looks for due scans every ``tick`` seconds."""

    def __init__(self, ctx: Context, runner: ScanQueue, tick: float = 30.0) -> None:
        self.ctx = ctx
        self.runner = runner
        self.tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mediamesh-schedule", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def run_due(self) -> list[str]:
        """Start (or queue) every due scan; returns the sources it started."""
        started = []
        for name in due_sources(self.ctx):
            try:
                self.runner.start(name, trigger="schedule", wait=0.5)
                started.append(name)
            except Conflict:
                pass  # already running or queued
            except MediameshError as exc:
                log.warning("scheduled scan of %s did not start: %s", name, exc.message)
        return started

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self.run_due()
            except Exception:  # one bad round must not end the scheduler
                log.exception("the scan scheduler failed a round")
