"""The server's scan queue: scans asked for by the API, the CLI's server mode or a schedule all go through
it. At most ``limit`` run at once, one per source (the scan records refuse a second, also across
processes); the rest wait in order. Every running scan is cancellable; a shutdown cancels them all, and
they end ``interrupted`` and resume on the next scan."""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from mediamesh.catalog.times import iso, now_utc
from mediamesh.context import Context
from mediamesh.errors import Conflict, MediameshError, NotFound
from mediamesh.services.scans import get_scan, run_scan
from mediamesh.services.sources import find_source

log = logging.getLogger(__name__)


@dataclass
class _Request:
    source_id: int
    source: str
    path: str
    confirm_missing: bool
    trigger: str
    queued_at: Any = field(default_factory=now_utc)
    cancel: threading.Event = field(default_factory=threading.Event)
    scan_id: int | None = None
    error: MediameshError | None = None

    def public(self, position: int) -> dict[str, Any]:
        return {
            "id": None,
            "source": self.source,
            "path": self.path,
            "status": "queued",
            "trigger": self.trigger,
            "queued_at": iso(self.queued_at),
            "position": position,
        }


class ScanRunner:
    def __init__(self, ctx: Context, limit: int = 2) -> None:
        self.ctx = ctx
        self.limit = limit
        self._queue: deque[_Request] = deque()
        self._running: dict[int, tuple[threading.Thread, _Request]] = {}  # by source id
        self._lock = threading.Lock()
        self._stopped = False

    def start(
        self, id_or_name: str, path: str = "", confirm_missing: bool = False, trigger: str = "api"
    ) -> dict[str, Any]:
        """Start a scan now if a slot is free, else queue it. Returns the scan record once it exists (or
        the queued request); raises why it cannot start (unknown source, unmounted, already running)."""
        with self.ctx.catalog.read() as conn:
            row = find_source(conn, id_or_name)
        request = _Request(row.id, row.name, path, confirm_missing, trigger)
        with self._lock:
            if self._stopped:
                raise Conflict("the server is shutting down")
            if row.id in self._running or any(r.source_id == row.id for r in self._queue):
                raise Conflict(f"a scan of {row.name!r} is already running or queued")
            if len(self._running) >= self.limit:
                self._queue.append(request)
                return request.public(len(self._queue))
            started = self._launch(request)
        started.wait()
        if request.scan_id is None:
            raise request.error or Conflict(f"the scan of {row.name!r} did not start; see the server log")
        return get_scan(self.ctx, request.scan_id)

    def _launch(self, request: _Request) -> threading.Event:
        """Run ``request`` on a thread of its own (the lock is held by the caller)."""
        started = threading.Event()
        thread = threading.Thread(
            target=self._work, args=(request, started), name=f"mediamesh-scan-{request.source}", daemon=True
        )
        self._running[request.source_id] = (thread, request)
        thread.start()
        return started

    def _work(self, request: _Request, started: threading.Event) -> None:
        def on_started(scan_id: int) -> None:
            request.scan_id = scan_id
            started.set()

        try:
            run_scan(
                self.ctx,
                str(request.source_id),
                request.path,
                request.confirm_missing,
                cancel=request.cancel,
                on_started=on_started,
                trigger=request.trigger,
            )
        except MediameshError as exc:
            request.error = exc
            if request.scan_id is None:
                log.info("scan of %s did not start: %s", request.source, exc.message)
        except Exception:  # logged; the scan record says failed
            log.exception("background scan of %s failed", request.source)
        finally:
            started.set()
            with self._lock:
                self._running.pop(request.source_id, None)
                if self._queue and not self._stopped:
                    self._launch(self._queue.popleft())

    def queued(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.public(i) for i, r in enumerate(self._queue, 1)]

    def running_scan_ids(self) -> list[int]:
        with self._lock:
            return [r.scan_id for _, r in self._running.values() if r.scan_id is not None]

    def cancel(self, scan_id: int) -> dict[str, Any]:
        """Stop a scan that runs in this server; it ends ``interrupted`` and the next scan resumes it."""
        with self._lock:
            found = next((r for _, r in self._running.values() if r.scan_id == scan_id), None)
        if found is None:
            scan = get_scan(self.ctx, scan_id)  # NotFound for an unknown id
            if scan["status"] == "running":
                raise Conflict(f"scan {scan_id} runs in another process; stop it there (Ctrl-C)")
            raise Conflict(f"scan {scan_id} is not running (it is {scan['status']})")
        found.cancel.set()
        return get_scan(self.ctx, scan_id)

    def unqueue(self, id_or_name: str) -> dict[str, Any]:
        """Drop a queued (not yet running) scan of a source."""
        with self._lock:
            for request in self._queue:
                if id_or_name in (str(request.source_id), request.source):
                    self._queue.remove(request)
                    return {**request.public(0), "status": "cancelled"}
        raise NotFound(f"no queued scan of {id_or_name!r}")

    def stop(self, timeout: float = 30) -> None:
        with self._lock:
            self._stopped = True
            self._queue.clear()
            running = list(self._running.values())
        for _, request in running:
            request.cancel.set()
        for thread, _ in running:
            thread.join(timeout)
