"""Questions about media: what do I have, where is each copy, which are duplicates, what went missing.

A location's state is ``present`` or ``missing`` as the last complete scan left it, except that a present
file on a source whose health is ``offline`` shows ``offline``: derived here, never written to every row.
A media item's state is the best of its locations' (present > offline > missing).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    and_,
    bindparam,
    column,
    distinct,
    exists,
    func,
    or_,
    select,
    table,
    text,
    type_coerce,
)
from sqlalchemy.sql.elements import BindParameter

from mediamesh.backends import features_of
from mediamesh.catalog import queries, search
from mediamesh.catalog.cache import QueryCaches
from mediamesh.catalog.database import Catalog
from mediamesh.catalog.queries import (
    LOCATION_STATE,
    MEDIA_ID_RE,
    find_project,
)
from mediamesh.catalog.schema import files, media, replaced, sources
from mediamesh.catalog.times import iso, iso_raw
from mediamesh.context import Context
from mediamesh.errors import InvalidInput, NotFound
from mediamesh.projects.membership import in_project
from mediamesh.projects.rules import KINDS
from mediamesh.scanning.names import name_key, path_key
from mediamesh.services.sources import find_source

log = logging.getLogger(__name__)
STATES = queries.STATES
MAX_LIMIT = 1000
#: How long a filter's total count is reused: counting a million rows for every page would dominate.
COUNT_TTL = 10.0

parse_media_id = queries.parse_media_id


_fts = table("files_fts", column("rowid"))
# Made once: building an alias's column collection costs more than running the whole search.
_HIT, _SIBLING = files.alias("hit"), files.alias("sibling")


def _search_page(
    catalog: Catalog,
    caches: QueryCaches,
    conn: Connection,
    q: str,
    source_id: int | None,
    conds: list[ColumnElement[bool]],
    limit: int,
    cursor: str | None,
    key: tuple[object, ...],
    generation: object,
) -> dict[str, Any]:
    """SQLite: media found through the full-text index, in the order of their first matching location.

    The index is read in its own order and stops after a page, so a word found in 200,000 paths costs the
    same as a rare one; a media item is listed at its first matching location only, never twice.
    """
    match: BindParameter[str] = bindparam(
        "fts_query", search.fts_query(conn, q, caches.memo, generation, COUNT_TTL)
    )
    matches: ColumnElement[bool] = text("files_fts MATCH :fts_query").bindparams(match)  # type: ignore[assignment]
    hit, sibling = _HIT, _SIBLING
    on_source = [hit.c.source_id == source_id] if source_id is not None else []
    earlier_match = (
        select(sibling.c.id)
        .where(
            sibling.c.media_id == hit.c.media_id,
            sibling.c.id < hit.c.id,
            *([sibling.c.source_id == source_id] if source_id is not None else []),
            exists(
                select(_fts.c.rowid).where(
                    _fts.c.rowid == sibling.c.id, text("files_fts MATCH :fts_query").bindparams(match)
                )
            ),
        )
        .exists()
    )
    joined = _fts.join(hit, hit.c.id == _fts.c.rowid).join(media, media.c.id == hit.c.media_id)
    where = [matches, *on_source, *conds]
    total = select(func.count(distinct(media.c.id))).select_from(joined).where(*where)
    count = caches.named("media-counts", COUNT_TTL).get(
        catalog, key, generation, lambda c: c.execute(total).scalar_one(), conn
    )
    query = select(*_LISTED, hit.c.id.label("hit")).select_from(joined).where(*where, ~earlier_match)
    if cursor is not None:
        if not re.fullmatch(r"f[0-9]{1,18}", cursor):
            raise InvalidInput("invalid cursor (give the 'next' of the previous page of this search)")
        query = query.where(_fts.c.rowid > int(cursor[1:]))
    rows = conn.execute(query.order_by(_fts.c.rowid).limit(limit + 1)).all()
    return _page(conn, rows, limit, cursor, count, lambda last: f"f{last.hit}")


def present_copies() -> Any:
    return (
        select(func.count())
        .select_from(files)
        .where(files.c.media_id == media.c.id, files.c.state == "present")
        .scalar_subquery()
    )


@dataclass(frozen=True)
class Technical:
    """Filters on what the extract stage read from the content. Media not probed yet do not match."""

    min_width: int | None = None
    min_height: int | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    codec: str | None = None
    camera: str | None = None  # a part of "make model", any case
    taken_after: datetime | None = None
    taken_before: datetime | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = []
        if self.min_width is not None:
            conds.append(media.c.width >= self.min_width)
        if self.min_height is not None:
            conds.append(media.c.height >= self.min_height)
        if self.min_duration is not None:
            conds.append(media.c.duration >= self.min_duration)
        if self.max_duration is not None:
            conds.append(media.c.duration <= self.max_duration)
        if self.codec:
            conds.append(func.lower(media.c.codec) == self.codec.lower())
        if self.camera:
            conds.append(func.lower(media.c.camera).contains(self.camera.lower(), autoescape=True))
        if self.taken_after is not None:
            conds.append(media.c.taken_at >= aware_utc(self.taken_after))
        if self.taken_before is not None:
            conds.append(media.c.taken_at < aware_utc(self.taken_before))
        return conds


def aware_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def list_media(
    ctx: Context,
    source: str | None = None,
    state: str | None = None,
    duplicates: bool = False,
    kind: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
    q: str | None = None,
    single_copy: bool = False,
    project: str | None = None,
    technical: Technical | None = None,
) -> dict[str, Any]:
    """A page of media, ordered by id; ``next`` is the cursor of the following page (or None).

    ``state=offline`` is "only on sources that cannot be reached now" (orphaned by a disconnected NAS);
    ``single_copy`` is media with exactly one present location; ``q`` searches the locations' paths for
    whole words (``word*`` for words beginning so). With ``q``, ``source`` limits which locations match.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"invalid kind {kind!r}: use one of {', '.join(KINDS)}")
    if duplicates and single_copy:
        raise InvalidInput("duplicates and single_copy exclude each other")
    with ctx.catalog.read() as conn:
        source_id = find_source(conn, source).id if source is not None else None
        conds: list[ColumnElement[bool]] = []
        if project is not None:
            conds.append(in_project(find_project(conn, project).id))
        if state is not None:
            conds.append(queries.state_filter(state))
        if kind is not None:
            conds.append(media.c.kind == kind)
        if duplicates:
            conds.append(present_copies() > 1)
        if single_copy:
            conds.append(present_copies() == 1)
        if technical is not None:
            conds.extend(technical.conditions())
        key = (source, state, kind, duplicates, single_copy, q, project, technical)
        generation = ctx.catalog.generation
        if q is not None and conn.dialect.name == "sqlite":
            return _search_page(
                ctx.catalog, ctx.caches, conn, q, source_id, conds, limit, cursor, key, generation
            )
        if q is not None:
            conds.append(search.pg_name_match(q))
        if source_id is not None:
            conds.append(queries.has_location(files.c.source_id == source_id))
        if cursor is not None and not MEDIA_ID_RE.match(cursor):
            raise InvalidInput("invalid cursor")
        query = select(*_LISTED).where(*conds)
        total = select(func.count()).select_from(query.subquery())
        count = ctx.caches.named("media-counts", COUNT_TTL).get(
            ctx.catalog, key, generation, lambda c: c.execute(total).scalar_one(), conn
        )
        if cursor is not None:
            query = query.where(media.c.id > cursor)
        rows = conn.execute(query.order_by(media.c.id).limit(limit + 1)).all()
        return _page(conn, rows, limit, cursor, count, lambda last: str(last.id))


def _page(
    conn: Connection,
    rows: Sequence[Any],
    limit: int,
    cursor: str | None,
    count: int,
    cursor_of: Callable[[Any], str],
) -> dict[str, Any]:
    """A page of media from ``limit + 1`` rows (the extra one says whether there is a next page)."""
    page = rows[:limit]
    locations = _locations(conn, [r.id for r in page])
    bare = [r.id for r in page if not locations.get(r.id)]  # no location left: replaced, or gone?
    edited = (
        set(conn.execute(select(replaced.c.media_id).where(replaced.c.media_id.in_(bare))).scalars())
        if bare
        else set()
    )
    data = [_media_public(r, locations.get(r.id, []), replaced_by=r.id in edited) for r in page]
    if cursor is None and len(rows) <= limit:
        count = len(page)  # everything is on this page: exact, even while a cached count catches up
    return {"data": data, "count": count, "next": cursor_of(page[-1]) if len(rows) > limit else None}


# Every page of media asks this, so it is plain SQL run on the driver: no statement to compile, no row
# processing (measured: about a third of a 50-item page's time went to SQLAlchemy here).
_LOCATIONS_SQL = (
    "SELECT f.media_id, s.name, f.path,"
    " CASE WHEN f.state = 'present' AND (s.health_status = 'offline' OR NOT s.enabled)"
    " THEN 'offline' ELSE f.state END, f.size, f.mtime_ns, f.missing_since"
    # "+f.source_id": look files up by media id, never by source (SQLite may otherwise walk a whole
    # source's part of an index on files(source_id, ...) for 60 media: 20 ms instead of 1).
    " FROM files f JOIN sources s ON s.id = +f.source_id WHERE f.media_id IN ({})"
    " ORDER BY f.media_id, s.name, f.path"
)


def _locations(conn: Connection, media_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {m: [] for m in media_ids}
    if not media_ids:
        return out
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = _LOCATIONS_SQL.format(", ".join([marker] * len(media_ids)))
    for media_id, source, path, state, size, mtime_ns, missing_since in conn.exec_driver_sql(
        sql, tuple(media_ids)
    ):
        out[media_id].append(
            {
                "source": source,
                "path": path,
                "state": state,
                "size": size,
                "mtime_ns": mtime_ns,
                "missing_since": iso_raw(missing_since),
            }
        )
    return out


#: What a listing shows of a media item (the full ``info`` only in the detail).
# ``taken_at`` as the driver gives it: SQLAlchemy's date parsing, then ISO again, cost more than the rest.
_LISTED = [
    type_coerce(c, String).label(c.name) if c.name == "taken_at" else c
    for c in media.c
    if c.name not in ("info", "first_seen", "metadata_at")
]


#: Positions in a row that starts with the _LISTED columns (attribute access on rows costs more here).
_AT = {c.name: i for i, c in enumerate(_LISTED)}


def _state(copies: int, offline: int, any_location: bool, replaced_by: bool) -> str:
    if copies:
        return "present"
    if offline:
        return "offline"
    return "replaced" if replaced_by and not any_location else "missing"


def _media_public(
    row: Any, locations: list[dict[str, Any]], detail: bool = False, replaced_by: bool = False
) -> dict[str, Any]:
    """``replaced_by``: a file that held it was edited in place (see _history)."""
    copies = offline = 0
    for loc in locations:
        if loc["state"] == "present":
            copies += 1
        elif loc["state"] == "offline":
            offline += 1
    v = tuple(row)
    at = _AT
    out = {
        "id": v[at["id"]],
        "size": v[at["size"]],
        "kind": v[at["kind"]],
        "mime": v[at["mime"]],
        "state": _state(copies, offline, bool(locations), replaced_by),
        "copies": copies,
        "width": v[at["width"]],
        "height": v[at["height"]],
        "duration": v[at["duration"]],
        "codec": v[at["codec"]],
        "taken_at": iso_raw(v[at["taken_at"]]),
        "camera": v[at["camera"]],
        "metadata_error": v[at["metadata_error"]],
        "locations": locations,
    }
    if detail:
        out["info"] = row.info
        out["metadata_bytes"] = row.metadata_bytes
        out["first_seen"] = iso(row.first_seen)
    return out


def catalog_totals(ctx: Context) -> dict[str, int]:
    """How many media the catalog holds, and their size."""
    with ctx.catalog.read() as conn:
        count, size = conn.execute(select(func.count(), func.coalesce(func.sum(media.c.size), 0))).one()
    return {"media": int(count), "size": int(size)}


def show_media(ctx: Context, media_id: str) -> dict[str, Any]:
    """One media item by its id or a unique prefix of it (at least 6 hex digits)."""
    with ctx.catalog.read() as conn:
        media_id = queries.resolve_media_id(conn, media_id)
        row = conn.execute(
            select(*_LISTED, media.c.info, media.c.first_seen).where(media.c.id == media_id)
        ).first()
        if row is None:
            raise NotFound(f"no media {media_id}")
        history = _history(conn, media_id)
        out = _media_public(row, _locations(conn, [media_id])[media_id], True, bool(history))
        out["history"] = history
        return out


def _history(conn: Connection, media_id: str) -> list[dict[str, Any]]:
    """Where this content was before its file was edited in place: path, when, and the content now."""
    rows = conn.execute(
        select(replaced, sources.c.name.label("source"))
        .join(sources, sources.c.id == replaced.c.source_id)
        .where(replaced.c.media_id == media_id)
        .order_by(replaced.c.replaced_at)
    ).all()
    return [
        {"source": r.source, "path": r.path, "replaced_at": iso(r.replaced_at), "by_media_id": r.by_media_id}
        for r in rows
    ]


def whereis(ctx: Context, what: str) -> dict[str, Any]:
    """Every location of a media id, of the file at an absolute path, or of ``source:relative/path``."""
    text = what.strip()
    if MEDIA_ID_RE.match(text.lower()) or (
        len(text) >= queries.MIN_PREFIX
        and all(c in "0123456789abcdef" for c in text.lower())
        and "/" not in text
    ):
        return show_media(ctx, text)
    with ctx.catalog.read() as conn:
        candidates = _resolve_path(conn, text)
        for source_id, rel, ci in candidates:
            key = path_key(rel, ci)
            dir_key, _, name = key.rpartition("/")
            media_id = conn.execute(
                select(files.c.media_id).where(
                    files.c.source_id == source_id,
                    files.c.dir_key == dir_key,
                    files.c.name_key == name_key(name, ci),
                )
            ).scalar_one_or_none()
            if media_id is not None:
                break
        else:
            raise NotFound(f"{text!r} is not in the catalog (is it below a registered source, and scanned?)")
    return show_media(ctx, media_id)


def _resolve_path(conn: Connection, text: str) -> list[tuple[int, str, bool]]:
    """(source id, path relative to it, case-insensitive?) for each source the path may be on."""
    if os.path.isabs(text):
        target = os.path.normpath(text)
        found = []
        rows = conn.execute(select(sources)).all()
        for row in (r for r in rows if features_of(r.kind).local_paths):
            root = row.location.rstrip("/")
            if target.startswith(root + "/"):
                found.append((row.id, target[len(root) + 1 :], False))
        if not found:
            raise NotFound(f"{text!r} is not below any registered local source")
        return found
    source_name, sep, rel = text.partition(":")
    if not sep or not rel:
        raise InvalidInput(f"give a media id, an absolute path, or SOURCE:relative/path (not {text!r})")
    row = find_source(conn, source_name)
    ci = features_of(row.kind, row.features).case_insensitive
    return [(row.id, rel.strip("/"), ci)]


def list_files(
    ctx: Context,
    source: str | None = None,
    path_prefix: str | None = None,
    state: str | None = None,
    limit: int = 100,
    cursor: int | None = None,
) -> dict[str, Any]:
    """A page of locations, ordered by their id; ``next`` is the cursor of the following page."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    if state is not None and state not in STATES:
        raise InvalidInput(f"invalid state {state!r}: use one of {', '.join(STATES)}")
    with ctx.catalog.read() as conn:
        conds: list[ColumnElement[bool]] = []
        if source is not None:
            conds.append(files.c.source_id == find_source(conn, source).id)
        if path_prefix:
            prefix = path_prefix.strip("/")
            # A range, not LIKE: it uses the (source, path) index and treats % and _ as the characters they are.
            conds.append(
                or_(files.c.path == prefix, and_(files.c.path >= prefix + "/", files.c.path < prefix + "0"))
            )
        if state is not None:
            conds.append(LOCATION_STATE == state)  # noqa: SIM300 - a SQL expression, not a constant
        query = (
            select(
                files.c.id,
                sources.c.name,
                files.c.path,
                files.c.size,
                files.c.mtime_ns,
                files.c.media_id,
                LOCATION_STATE.label("state"),
            )
            .join(sources, sources.c.id == files.c.source_id)
            .where(*conds)
        )
        count = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        if cursor is not None:
            query = query.where(files.c.id > cursor)
        rows = conn.execute(query.order_by(files.c.id).limit(limit + 1)).all()
    page = rows[:limit]
    data = [
        {
            "id": r.id,
            "source": r.name,
            "path": r.path,
            "size": r.size,
            "mtime_ns": r.mtime_ns,
            "media_id": r.media_id,
            "state": r.state,
        }
        for r in page
    ]
    return {"data": data, "count": count, "next": page[-1].id if len(rows) > limit else None}
