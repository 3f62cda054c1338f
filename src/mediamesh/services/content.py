"""Reading a media item's bytes from whichever of its locations can be reached now.

Nothing here takes a path from the caller: a location is named by a media id or a file id, and its path
comes from the catalog and is opened through the source's backend, which refuses ``..``, absolute paths
and symbolic links. Before the first byte, the file is stat'ed: if its size or modification time differs
from what the last scan recorded, its content may no longer be the media id, and that copy is skipped.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy import Connection, select

from mediamesh.backends.base import Backend, BackendError, EntryKind, NotFoundError, UnreachableError
from mediamesh.catalog.schema import files, sources
from mediamesh.context import Context
from mediamesh.errors import Conflict, NotFound, SourceUnavailable
from mediamesh.services.media import parse_media_id
from mediamesh.services.sources import backend_for

#: Online first, then degraded, then not yet known; offline sources are still tried last (health may lag).
HEALTH_ORDER = {"online": 0, "degraded": 1, "unknown": 2, "offline": 3}


@dataclass
class OpenedContent:
    """An open location: the caller reads ``fh`` and must call :meth:`close`."""

    fh: BinaryIO
    size: int
    media_id: str
    name: str
    source: str
    path: str
    content_type: str

    def close(self) -> None:
        self.fh.close()


def content_type(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


def _candidates(conn: Connection, *conds: Any) -> list[Any]:
    rows = conn.execute(
        select(
            files.c.id,
            files.c.path,
            files.c.size,
            files.c.mtime_ns,
            files.c.media_id,
            files.c.state,
            sources.c.id.label("source_id"),
            sources.c.name.label("source"),
            sources.c.enabled,
            sources.c.health_status,
            sources.c.options,
        )
        .join(sources, sources.c.id == files.c.source_id)
        .where(*conds)
    ).all()

    def preference(r: Any) -> tuple[int, int, str, str]:
        priority = int((r.options or {}).get("priority", 0))
        return (HEALTH_ORDER.get(r.health_status, 2), -priority, r.source, r.path)

    return sorted(rows, key=preference)


def _open_location(ctx: Context, loc: Any) -> OpenedContent:
    """Open one location, checking it still is what the catalog says; raises BackendError or Conflict.
    The backend is the source's shared one (a player seeking in a video does not log in for every range)."""
    with ctx.catalog.read() as conn:
        row = conn.execute(select(sources).where(sources.c.id == loc.source_id)).one()
    backend = backend_for(ctx, row)
    try:
        return _open_checked(backend, loc)
    except UnreachableError:
        ctx.connections.reset(row.id)  # the next request connects afresh
        raise


def _open_checked(backend: Backend, loc: Any) -> OpenedContent:
    entry = backend.stat(loc.path)
    if entry.kind is not EntryKind.FILE:
        raise Conflict(f"{loc.source}:{loc.path} is no longer a regular file; rescan the source")
    if entry.size != loc.size or entry.mtime_ns != loc.mtime_ns:
        raise Conflict(f"{loc.source}:{loc.path} changed since the last scan; rescan the source")
    fh = backend.open(loc.path)
    name = loc.path.rpartition("/")[2]
    return OpenedContent(fh, loc.size, loc.media_id, name, loc.source, loc.path, content_type(name))


def open_media(ctx: Context, media_id: str) -> OpenedContent:
    """The first location of a media item that opens and still matches the catalog.

    404 if the media is unknown or every copy is missing; 503 naming the sources if none can be reached.
    """
    media_id = parse_media_id(media_id)
    with ctx.catalog.read() as conn:
        locations = _candidates(conn, files.c.media_id == media_id)
    if not locations:
        raise NotFound(f"no media {media_id}")
    present = [loc for loc in locations if loc.state == "present"]
    if not present:
        raise NotFound(f"every known copy of {media_id} is missing (see 'mediamesh whereis {media_id}')")
    failures: list[str] = []
    for loc in present:
        if not loc.enabled:
            failures.append(f"{loc.source} (unmounted)")
            continue
        try:
            return _open_location(ctx, loc)
        except (BackendError, Conflict) as exc:
            failures.append(f"{loc.source} ({loc.health_status}: {exc})")
    raise SourceUnavailable(f"no copy of {media_id} can be read now; tried " + "; ".join(failures))


def open_file(ctx: Context, file_id: int) -> OpenedContent:
    """One location's bytes (404 if unknown or missing, 503 if its source cannot be reached)."""
    with ctx.catalog.read() as conn:
        found = _candidates(conn, files.c.id == file_id)
    if not found:
        raise NotFound(f"no file {file_id}")
    loc = found[0]
    if loc.state != "present":
        raise NotFound(f"{loc.source}:{loc.path} is missing since a scan did not find it")
    if not loc.enabled:
        raise SourceUnavailable(f"source {loc.source!r} is unmounted ('mediamesh source mount {loc.source}')")
    try:
        return _open_location(ctx, loc)
    except UnreachableError as exc:
        raise SourceUnavailable(f"source {loc.source!r} ({loc.health_status}) cannot be read: {exc}") from exc
    except NotFoundError as exc:
        raise NotFound(f"{loc.source}:{loc.path} is no longer there; rescan the source") from exc
    except BackendError as exc:
        raise Conflict(f"{loc.source}:{loc.path} cannot be served: {exc}") from exc
