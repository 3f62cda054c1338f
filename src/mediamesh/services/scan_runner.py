"""Scans started by the server run in the background: at most ``limit`` at once, one per source (the scan
records refuse a second), each cancellable; a shutdown cancels them, and they are resumable."""

from __future__ import annotations

import logging
import threading
from typing import Any

from mediamesh.context import Context
from mediamesh.errors import MediameshError
from mediamesh.services.scans import get_scan, run_scan

log = logging.getLogger(__name__)


class ScanRunner:
    def __init__(self, ctx: Context, limit: int = 2) -> None:
        self.ctx = ctx
        self._slots = threading.Semaphore(limit)
        self._running: dict[int, tuple[threading.Thread, threading.Event]] = {}
        self._lock = threading.Lock()

    def start(self, id_or_name: str, path: str = "", confirm_missing: bool = False) -> dict[str, Any]:
        """Start a scan in the background; returns its record once it exists (or raises why it cannot)."""
        started = threading.Event()
        cancel = threading.Event()
        outcome: dict[str, Any] = {}

        def on_started(scan_id: int) -> None:
            outcome["scan_id"] = scan_id
            with self._lock:
                self._running[scan_id] = (threading.current_thread(), cancel)
            started.set()

        def work() -> None:
            try:
                with self._slots:
                    run_scan(
                        self.ctx, id_or_name, path, confirm_missing, cancel=cancel, on_started=on_started
                    )
            except MediameshError as exc:
                outcome["error"] = exc
            except Exception:  # logged; the scan record says failed
                log.exception("background scan of %s failed", id_or_name)
            finally:
                started.set()
                with self._lock:
                    self._running.pop(outcome.get("scan_id", -1), None)

        threading.Thread(target=work, name=f"mediamesh-scan-{id_or_name}", daemon=True).start()
        started.wait()
        if "error" in outcome:
            raise outcome["error"]
        return get_scan(self.ctx, outcome["scan_id"])

    def stop(self, timeout: float = 30) -> None:
        with self._lock:
            running = list(self._running.values())
        for _, cancel in running:
            cancel.set()
        for thread, _ in running:
            thread.join(timeout)
