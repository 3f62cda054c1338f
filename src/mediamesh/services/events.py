"""The event stream of this process: one reader of the catalog's change log (catalog/events.py) that hands
each new event to every open stream (``GET /api/v1/events``), so that a hundred browsers cost one query.

The log is in the catalog, so events written by any process (a CLI scan beside the server, a worker)
reach every stream. A stream that falls behind (a slow client) is not waited for: it is told so and
closed, and the browser reconnects with ``Last-Event-ID`` and catches up from the log itself.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mediamesh.catalog import events as event_log
from mediamesh.catalog.events import Event
from mediamesh.context import Context
from mediamesh.errors import InvalidInput, NotFound, TooBusy
from mediamesh.services.sources import find_source

log = logging.getLogger(__name__)

#: Events one stream may have waiting before it counts as fallen behind.
QUEUE_SIZE = 2000
#: Streams served at once by this process (each costs a queue and a small task, no thread).
MAX_STREAMS = 256


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a stream wants: types or prefixes (``media.*``), and sources."""

    types: tuple[str, ...] = ()
    source_ids: frozenset[int] | None = None

    def wants(self, event: Event) -> bool:
        if not event_log.matches(self.types, event.type):
            return False
        return self.source_ids is None or event.source_id in self.source_ids


def parse_filter(ctx: Context, types: str | None, source: str | None) -> EventFilter:
    """A filter from the query string: ``types=media.*,scan.finished``, ``source=nas`` (names or ids)."""
    try:
        patterns = tuple(event_log.validate_patterns((types or "").split(",")))
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    ids: frozenset[int] | None = None
    if source:
        with ctx.catalog.read() as conn:
            try:
                ids = frozenset(find_source(conn, s.strip()).id for s in source.split(",") if s.strip())
            except NotFound as exc:
                raise InvalidInput(str(exc)) from None
    return EventFilter(patterns, ids)


@dataclass(eq=False)
class Subscription:
    filter: EventFilter
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Event | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    #: Set when the queue overflowed: the stream says so and ends; the client resumes from the log.
    behind: bool = False

    def offer(self, event: Event) -> None:  # on the event loop
        if self.behind:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.behind = True
            self.queue.get_nowait()
            self.queue.put_nowait(None)


class EventHub:
    """Follows the log on a thread of its own (a query on the primary key every ``poll`` seconds) and
    fans events out to the subscriptions of this process."""

    def __init__(self, ctx: Context, poll: float = 0.5) -> None:
        self.ctx = ctx
        self.poll = poll
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.cursor = 0
        #: Called with each batch of new events on the hub's thread (the webhook sender listens here).
        self.listeners: list[Callable[[list[Event]], None]] = []

    def start(self) -> None:
        with self.ctx.catalog.read() as conn:
            self.cursor = event_log.last_id(conn)
        self._thread = threading.Thread(target=self._run, name="mediamesh-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            subs = list(self._subs)
        for sub in subs:  # every stream ends; the clients reconnect to the next server
            sub.loop.call_soon_threadsafe(sub.queue.put_nowait, None)

    def wake(self) -> None:
        """Look at the log now (after a write of this process), not at the next poll."""
        self._wake.set()

    def subscribe(self, flt: EventFilter) -> Subscription:
        with self._lock:
            if len(self._subs) >= MAX_STREAMS:
                raise TooBusy(f"this server serves at most {MAX_STREAMS} event streams at once")
            sub = Subscription(flt, asyncio.get_running_loop())
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    @property
    def streams(self) -> int:
        return len(self._subs)

    def _run(self) -> None:
        prune_every, since_prune = 3600.0 / self.poll, 0.0
        while not self._stop.is_set():
            try:
                self._round()
                since_prune += 1
                if since_prune >= prune_every:
                    since_prune = 0
                    with self.ctx.catalog.write(bump=False) as conn:
                        event_log.prune(conn)
            except Exception:  # a lost round costs nothing: the next one reads from the same cursor
                log.warning("reading the event log failed", exc_info=True)
            self._wake.wait(self.poll)
            self._wake.clear()

    def _round(self) -> None:
        while True:
            with self.ctx.catalog.read() as conn:
                page = event_log.after(conn, self.cursor, 500)
            if not page:
                return
            self.cursor = page[-1].id
            self._publish(page)
            if len(page) < 500:
                return

    def _publish(self, page: list[Event]) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            wanted = [e for e in page if sub.filter.wants(e)]
            if wanted:
                sub.loop.call_soon_threadsafe(_offer_all, sub, wanted)
        for listener in self.listeners:
            try:
                listener(page)
            except Exception:
                log.exception("an event listener failed")


def _offer_all(sub: Subscription, events: list[Event]) -> None:
    for event in events:
        sub.offer(event)


def replay(ctx: Context, after: int, flt: EventFilter, limit: int = 1000) -> tuple[list[Event], bool]:
    """Events after ``after`` that the filter wants (at most ``limit`` read), and whether some were
    already pruned (the client missed events and should reload what it shows)."""
    with ctx.catalog.read() as conn:
        oldest = event_log.first_id(conn)
        page = event_log.after(conn, after, limit)
    gap = after > 0 and oldest > after + 1
    return [e for e in page if flt.wants(e)], gap


def recent(
    ctx: Context, after: int = 0, limit: int = 100, types: str | None = None, max_read: int = 20_000
) -> list[dict[str, Any]]:
    """Events as a list (``mediamesh events``, ``GET /api/v1/events/recent``): the newest ``limit`` that
    ``types`` wants among the newest ``max_read``, or those after ``after``; oldest first."""
    flt = parse_filter(ctx, types, None)
    with ctx.catalog.read() as conn:
        if after > 0:
            page = [e for e in event_log.after(conn, after, 5000) if flt.wants(e)][:limit]
        else:  # the newest ``limit`` it wants, found going back page by page
            page, cursor, read = [], event_log.last_id(conn) + 1, 0
            while len(page) < limit and cursor > 1 and read < max_read:
                older = event_log.before(conn, cursor, 1000)
                if not older:
                    break
                page.extend(e for e in older if flt.wants(e))
                cursor, read = older[-1].id, read + len(older)
            page = sorted(page[:limit], key=lambda e: e.id)
    return [e.public() for e in page]


def page_after(ctx: Context, cursor: int, types: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """The events after ``cursor`` that ``types`` wants (up to 1,000 read), and the cursor to go on from."""
    flt = parse_filter(ctx, types, None)
    with ctx.catalog.read() as conn:
        page = event_log.after(conn, cursor, 1000)
    return [e.public() for e in page if flt.wants(e)], (page[-1].id if page else cursor)


def newest_id(ctx: Context) -> int:
    with ctx.catalog.read() as conn:
        return event_log.last_id(conn)
