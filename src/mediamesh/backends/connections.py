"""The one place live backends are kept: health probes, content, scans and ``whereis`` all ask it.

A backend is keyed by its source and the source's version (kind, location, sealed secret, ``updated_at``):
a source changed anywhere (a new password through the API, the CLI or another process) has a new version,
so the next user gets a new backend and the old one is closed. Nobody else closes a shared backend: a
user that sees the source unreachable asks :meth:`Connections.reset`, and the next use reconnects.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from mediamesh.backends.base import Backend

log = logging.getLogger(__name__)

#: (kind, location, sealed secret, updated_at) of a source row.
Version = tuple[Any, ...]


def version_of(row: Any) -> Version:
    return (row.kind, row.location, row.secret, row.updated_at)


class Connections:
    """Live backends by source id, at most ``limit`` (the least recently used is closed first)."""

    def __init__(self, build: Callable[[Any], Backend], limit: int = 64) -> None:
        self._build = build
        self.limit = limit
        self._live: OrderedDict[int, tuple[Version, Backend]] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[int, threading.Lock] = {}
        self.built = 0  # how many backends were made (tests and metrics)

    def get(self, row: Any) -> Backend:
        """The backend of a source row as it is now (a new one when the row changed since)."""
        version = version_of(row)
        with self._lock:
            found = self._live.get(row.id)
            if found is not None and found[0] == version:
                self._live.move_to_end(row.id)
                return found[1]
            building = self._building.setdefault(row.id, threading.Lock())
        with building:  # one connection set-up per source at a time; the others wait and share it
            with self._lock:
                found = self._live.get(row.id)
                if found is not None and found[0] == version:
                    return found[1]
            backend = self._build(row)
            with self._lock:
                self.built += 1
                old = self._live.pop(row.id, None)
                self._live[row.id] = (version, backend)
                evicted = []
                while len(self._live) > self.limit:
                    evicted.append(self._live.popitem(last=False)[1][1])
        _close_aside(([old[1]] if old is not None else []) + evicted)
        return backend

    def reset(self, source_id: int) -> None:
        """Close a source's backend (unreachable, unmounted, removed): the next use connects afresh."""
        with self._lock:
            found = self._live.pop(source_id, None)
        if found is not None:
            _close_aside([found[1]])

    def live(self) -> dict[int, Version]:
        with self._lock:
            return {source_id: version for source_id, (version, _) in self._live.items()}

    def close(self, timeout: float = 5.0) -> None:
        """Close every backend (at shutdown); a hung server holds this up ``timeout`` seconds at most."""
        with self._lock:
            live, self._live = list(self._live.values()), OrderedDict()
        closing = _close_aside([backend for _, backend in live])
        if closing is not None:
            closing.join(timeout)


def _close_aside(backends: list[Backend]) -> threading.Thread | None:
    """Close backends on a thread of their own: saying goodbye to a hung server waits for its request
    timeout, which must not hold up the caller (a probe that just found the source offline)."""
    if not backends:
        return None

    def close_all() -> None:
        for backend in backends:
            try:
                backend.close()
            except Exception:  # a connection that cannot be closed cleanly is dropped anyway
                log.debug("closing a backend failed", exc_info=True)

    thread = threading.Thread(target=close_all, name="mediamesh-close", daemon=True)
    thread.start()
    return thread
