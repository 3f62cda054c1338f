"""Values computed from the catalog, kept while it has not changed: stale-while-revalidate on the catalog's
write generation. Used for counts and figures too costly to make on every request."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection

from mediamesh.catalog.database import Catalog

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    generation: object
    at: float
    value: T


class GenerationCache(Generic[T]):
    """Values per key (counts per filter, figures per page). A value is fresh while the catalog has not
    changed (its write generation) and for at most ``ttl`` seconds. A stale value is answered at once while
    one background thread recomputes it; only the very first value of a key is waited for (once, by every
    request that asks). Counting a million rows for every page would dominate; values may so lag a scan by
    a few seconds."""

    def __init__(self, ttl: float, min_age: float = 0.0) -> None:
        self.ttl = ttl
        #: A value younger than this is answered even after the catalog changed: during a scan, figures
        #: that cost a pass over the catalog are remade at most this often.
        self.min_age = min_age
        self._counts: dict[tuple[object, ...], _Entry[T]] = {}
        self._counting: dict[tuple[object, ...], threading.Event] = {}
        self._lock = threading.Lock()

    def get(
        self,
        catalog: Catalog,
        key: tuple[object, ...],
        generation: object,
        compute: Callable[[Connection], T],
        conn: Connection,
    ) -> T:
        with self._lock:
            known = self._counts.get(key)
            age = time.monotonic() - known.at if known is not None else 0.0
            if known is not None and (
                (known.generation == generation and age < self.ttl) or age < self.min_age
            ):
                return known.value
            running = self._counting.get(key)
            if running is None:
                done = self._counting[key] = threading.Event()
        if known is not None:  # stale: answer with it, and recount once, in the background
            if running is None:
                threading.Thread(
                    target=self._recount, args=(catalog, key, generation, compute, done), daemon=True
                ).start()
            return known.value
        if running is not None:  # the first count of this filter is being made: wait for it
            running.wait(120)
            with self._lock:
                made = self._counts.get(key)
            return made.value if made is not None else compute(conn)
        try:
            return self._store(key, generation, compute(conn))
        finally:
            self._finish(key, done)

    def current(self, key: tuple[object, ...], generation: object) -> bool:
        """The value kept for ``key`` was made at ``generation`` (no recount is due or under way)."""
        with self._lock:
            known = self._counts.get(key)
            return known is not None and known.generation == generation

    def _recount(
        self,
        catalog: Catalog,
        key: tuple[object, ...],
        generation: object,
        compute: Callable[[Connection], T],
        done: threading.Event,
    ) -> None:
        try:
            with catalog.read() as conn:
                self._store(key, generation, compute(conn))
        except Exception:  # the stale count stays; the next request tries again
            log.warning("recounting %r failed", key, exc_info=True)
        finally:
            self._finish(key, done)

    def _store(self, key: tuple[object, ...], generation: object, value: T) -> T:
        with self._lock:
            if len(self._counts) > 1000:
                self._counts.clear()
            self._counts[key] = _Entry(generation, time.monotonic(), value)
        return value

    def _finish(self, key: tuple[object, ...], done: threading.Event) -> None:
        with self._lock:
            self._counting.pop(key, None)
        done.set()


class QueryCaches:
    """Every cache of query results of one catalog, owned by the application context (never a module
    global: two catalogs in one process, as in tests, never see each other's values)."""

    def __init__(self) -> None:
        self._caches: dict[str, GenerationCache[Any]] = {}
        self._lock = threading.Lock()
        #: Small memo tables keyed by (generation, ...): a word's prefix expansions, and the like.
        self.memo: dict[tuple[object, ...], Any] = {}

    def named(self, name: str, ttl: float, min_age: float = 0.0) -> GenerationCache[Any]:
        with self._lock:
            cache = self._caches.get(name)
            if cache is None:
                cache = self._caches[name] = GenerationCache(ttl, min_age)
            return cache
