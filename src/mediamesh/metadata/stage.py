"""The extract stage: after a scan, every media item of the scanned source that was never probed is
probed once (any present copy will do; a second copy elsewhere is not probed again), and, when
thumbnails are eager, pictured. Only the catalog and the one file are touched; a damaged file records
``metadata_error`` and the stage goes on."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update

from mediamesh.backends.base import Backend, BackendError, UnreachableError
from mediamesh.catalog.database import Catalog
from mediamesh.catalog.schema import files, media
from mediamesh.catalog.times import now_utc
from mediamesh.metadata import thumbnails
from mediamesh.metadata.probe import Probe, probe

log = logging.getLogger(__name__)
LARGE = 100 * 1000 * 1000  # "a file over 100 MB": its probe should read at most a few MB


@dataclass
class ExtractResult:
    probed: int = 0
    errors: int = 0
    thumbnails: int = 0
    bytes_read: int = 0
    #: The most bytes read to probe one file larger than 100 MB (the issue's target: 4 MB).
    max_bytes_large_file: int = 0
    unreachable: str | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {
            "probed": self.probed,
            "errors": self.errors,
            "thumbnails": self.thumbnails,
            "bytes_read": self.bytes_read,
            "max_bytes_large_file": self.max_bytes_large_file,
            "error_examples": self.examples,
        }


_COLUMNS = (
    "kind", "mime", "width", "height", "duration", "codec", "taken_at", "camera", "info",
    "metadata_error", "metadata_at", "metadata_bytes",
)  # fmt: skip


def _values(result: Probe, bytes_read: int) -> dict[str, Any]:
    return {
        "kind": result.kind,  # None: the kind the name gave stays (see _SAVE)
        "mime": result.mime,
        "width": result.width,
        "height": result.height,
        "duration": result.duration,
        "codec": (result.codec or "")[:32] or None,
        "taken_at": result.taken_at,
        "camera": (result.camera or "")[:200] or None,
        "info": result.info,
        "metadata_error": result.error,
        "metadata_at": now_utc(),
        "metadata_bytes": bytes_read,
    }


def _todo(source_id: int) -> Any:
    """Present locations of the source whose media was never probed, in location id order."""
    return (
        select(files.c.id, files.c.media_id, files.c.path, media.c.size)
        .join(media, media.c.id == files.c.media_id)
        .where(files.c.source_id == source_id, files.c.state == "present", media.c.metadata_at.is_(None))
        .order_by(files.c.id)
    )


#: Media read from the catalog at a time: memory stays bounded whatever the size of the source.
PAGE = 1000


def _pages(catalog: Catalog, source_id: int, before_page: Callable[[], None]) -> Iterator[Any]:
    """(media id, path, size) to probe, read a page at a time along the source's locations (an index
    range, so each page costs the same); once per media id: ``before_page`` writes what was probed, so
    the next page no longer lists those media, and a page lists each of its media once."""
    after = 0
    while True:
        before_page()
        with catalog.read() as conn:
            page = conn.execute(_todo(source_id).where(files.c.id > after).limit(PAGE)).all()
        seen: set[str] = set()
        for row in page:
            if row.media_id not in seen:
                seen.add(row.media_id)
                yield row.media_id, row.path, row.size
        if len(page) < PAGE:
            return
        after = page[-1].id


def unprobed_count(conn: Connection, source_id: int) -> int:
    """Media with a present location on the source that were never probed."""
    query = (
        select(func.count(func.distinct(files.c.media_id)))
        .join(media, media.c.id == files.c.media_id)
        .where(files.c.source_id == source_id, files.c.state == "present", media.c.metadata_at.is_(None))
    )
    return int(conn.execute(query).scalar_one())


#: Probe results are written this many at a time (or every WRITE_SECONDS): one write per file would keep
#: the catalog's single writer busy for nothing.
WRITE_BATCH = 100
WRITE_SECONDS = 2.0


def extract(
    catalog: Catalog,
    backend: Backend,
    source_id: int,
    thumbnail_root: Path | None,
    cancel: threading.Event | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> ExtractResult:
    """Probe (and picture, with ``thumbnail_root``) the never-probed media of a source. ``progress`` hears
    ``{"done", "total", "probed", "errors", "thumbnails"}`` as it goes."""
    out = ExtractResult()
    with catalog.read() as conn:
        total = unprobed_count(conn, source_id)
    pending: list[dict[str, Any]] = []
    written_at = time.monotonic()

    def write() -> None:
        nonlocal written_at
        if pending:
            with catalog.write() as conn:
                conn.execute(_SAVE, pending)
            pending.clear()
        written_at = time.monotonic()

    for done, (media_id, path, size) in enumerate(_pages(catalog, source_id, write), 1):
        if cancel is not None and cancel.is_set():
            break
        try:
            with backend.open(path) as fh:
                result, bytes_read = probe(fh, size)
                if thumbnail_root is not None and result.error is None and result.kind in ("image", "video"):
                    try:
                        fh.seek(0)
                        out.thumbnails += len(
                            thumbnails.make(fh, result.kind, result.mime, thumbnail_root, media_id)
                        )
                    except Exception as exc:  # a picture we cannot make is not a metadata error
                        log.info("no thumbnail for %s (%s): %s", media_id, path, exc)
        except UnreachableError as exc:
            out.unreachable = str(exc)
            break
        except BackendError as exc:  # gone or changed since the walk: the next scan tries again
            log.info("cannot probe %s: %s", path, exc)
            continue
        out.probed += 1
        out.bytes_read += bytes_read
        if size > LARGE:
            out.max_bytes_large_file = max(out.max_bytes_large_file, bytes_read)
        if result.error is not None:
            out.errors += 1
            if len(out.examples) < 10:
                out.examples.append({"path": path, "error": result.error})
        pending.append({"b_id": media_id, **{f"b_{k}": v for k, v in _values(result, bytes_read).items()}})
        if len(pending) >= WRITE_BATCH or time.monotonic() - written_at >= WRITE_SECONDS:
            write()
            if progress is not None:
                progress(
                    {
                        "done": done,
                        "total": total,
                        "probed": out.probed,
                        "errors": out.errors,
                        "thumbnails": out.thumbnails,
                    }
                )
    write()
    if progress is not None:
        progress(
            {
                "done": total,
                "total": total,
                "probed": out.probed,
                "errors": out.errors,
                "thumbnails": out.thumbnails,
            }
        )
    return out


_SAVE = (
    update(media)
    .where(media.c.id == bindparam("b_id"))
    .values(
        {
            **{name: bindparam(f"b_{name}") for name in _COLUMNS if name != "kind"},
            "kind": func.coalesce(bindparam("b_kind", type_=media.c.kind.type), media.c.kind),
        }
    )
)
