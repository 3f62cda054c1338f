"""The catalog's change log: events appended in the transaction that makes the change.

Because an event is written with its change, a reader never hears of media that is not in the catalog
yet, and a change is never made without its event (a crash loses both or neither). Readers follow the
log by id; on PostgreSQL, appends take a transaction-level advisory lock so that ids become visible in
order (a reader at id N never sees N+2 committed before N+1). Item lists are cut into events of at most
:data:`ITEMS_PER_EVENT` entries, so a first scan of 200,000 files is 400 events, not one of 20 MB.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, text

from mediamesh.catalog.schema import events
from mediamesh.catalog.times import iso, now_utc

#: Every type there is; a webhook or a stream filter names these or a prefix ("media.*").
TYPES = (
    "media.added",
    "media.changed",
    "media.moved",
    "media.missing",
    "media.restored",
    "source.online",
    "source.offline",
    "source.degraded",
    "source.watching",
    "scan.started",
    "scan.finished",
    "project.created",
    "project.changed",
    "project.removed",
)
ITEMS_PER_EVENT = 500
#: How long events are kept, and at most how many (the older go first).
KEEP = timedelta(days=7)
KEEP_ROWS = 200_000
_PG_ORDER_LOCK = 0x6D6D_6576  # "mmev": appends commit one after another, in id order


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    at: str | None
    type: str
    source_id: int | None
    project_id: int | None
    data: dict[str, Any]

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "at": self.at, "data": self.data}


def append(
    conn: Connection,
    type_: str,
    data: dict[str, Any],
    *,
    source_id: int | None = None,
    project_id: int | None = None,
) -> None:
    """Append one event in the caller's write transaction."""
    append_many(conn, [(type_, data, source_id, project_id)])


def append_items(
    conn: Connection, type_: str, base: dict[str, Any], items: list[dict[str, Any]], source_id: int
) -> None:
    """Append ``items`` (media with their paths) as events of at most ITEMS_PER_EVENT entries each."""
    rows: list[tuple[str, dict[str, Any], int | None, int | None]] = [
        (type_, {**base, "items": items[i : i + ITEMS_PER_EVENT]}, source_id, None)
        for i in range(0, len(items), ITEMS_PER_EVENT)
    ]
    append_many(conn, rows)


def append_many(conn: Connection, rows: list[tuple[str, dict[str, Any], int | None, int | None]]) -> None:
    if not rows:
        return
    assert all(t in TYPES for t, *_ in rows), [t for t, *_ in rows]
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_ORDER_LOCK})
    now = now_utc()
    conn.execute(
        insert(events),
        [{"at": now, "type": t, "data": d, "source_id": s, "project_id": p} for t, d, s, p in rows],
    )


def after(conn: Connection, cursor: int, limit: int = 200) -> list[Event]:
    """Events with an id above ``cursor``, oldest first."""
    rows = conn.execute(select(events).where(events.c.id > cursor).order_by(events.c.id).limit(limit)).all()
    return [Event(r.id, iso(r.at), r.type, r.source_id, r.project_id, r.data or {}) for r in rows]


def before(conn: Connection, cursor: int, limit: int) -> list[Event]:
    """Events with an id below ``cursor``, newest first."""
    rows = conn.execute(
        select(events).where(events.c.id < cursor).order_by(events.c.id.desc()).limit(limit)
    ).all()
    return [Event(r.id, iso(r.at), r.type, r.source_id, r.project_id, r.data or {}) for r in rows]


def follow(conn: Connection, cursor: int, batch: int = 500) -> Iterator[Event]:
    """Every event after ``cursor`` that is there now, in pages."""
    while True:
        page = after(conn, cursor, batch)
        yield from page
        if len(page) < batch:
            return
        cursor = page[-1].id


def last_id(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one())


def first_id(conn: Connection) -> int:
    """The oldest event kept (0 when there is none): a reader behind it has missed some."""
    return int(conn.execute(select(func.coalesce(func.min(events.c.id), 0))).scalar_one())


def prune(conn: Connection) -> int:
    """Drop events older than KEEP, and beyond the newest KEEP_ROWS."""
    removed = conn.execute(delete(events).where(events.c.at < now_utc() - KEEP)).rowcount or 0
    newest = last_id(conn)
    if newest > KEEP_ROWS:
        removed += conn.execute(delete(events).where(events.c.id <= newest - KEEP_ROWS)).rowcount or 0
    return int(removed)


def matches(patterns: Iterable[str], type_: str) -> bool:
    """True when ``type_`` is one of ``patterns`` ("media.added") or under one ("media.*"); no
    patterns match everything."""
    wanted = list(patterns)
    if not wanted:
        return True
    return any(p == type_ or (p.endswith(".*") and type_.startswith(p[:-1])) for p in wanted)


def validate_patterns(patterns: Iterable[str]) -> list[str]:
    """The patterns, checked: each a known type or a known prefix with ``.*``. Raises ValueError."""
    out: list[str] = []
    prefixes = {t.split(".")[0] for t in TYPES}
    for raw in patterns:
        p = raw.strip()
        if not p:
            continue
        if p in TYPES or (p.endswith(".*") and p[:-2] in prefixes) or p == "*":
            out.append(p)
        else:
            raise ValueError(
                f"unknown event type {p!r}; known: {', '.join(TYPES)} (or a prefix like media.*)"
            )
    return [] if "*" in out else sorted(set(out))
