"""Serving thumbnails: from the cache in the data dir, else made now from a reachable copy (lazy mode, or
a picture the scan could not make), else a placeholder (audio, other kinds, no reachable copy)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from mediamesh.catalog.schema import media
from mediamesh.context import Context
from mediamesh.errors import InvalidInput, NotFound, SourceUnavailable
from mediamesh.metadata import thumbnails
from mediamesh.services.content import open_media
from mediamesh.services.media import parse_media_id

log = logging.getLogger(__name__)


@dataclass
class Thumbnail:
    path: Path
    #: A stand-in: not cached by the browser for long (the real picture may come once a copy is reachable).
    placeholder: bool
    reason: str | None = None


def thumbnail(ctx: Context, media_id: str, size: str) -> Thumbnail:
    if size not in thumbnails.SIZES:
        raise InvalidInput(f"size must be one of {', '.join(thumbnails.SIZES)}")
    media_id = parse_media_id(media_id)
    with ctx.catalog.read() as conn:
        row = conn.execute(
            select(media.c.kind, media.c.mime, media.c.metadata_at, media.c.metadata_error).where(
                media.c.id == media_id
            )
        ).first()
    if row is None:
        raise NotFound(f"no media {media_id}")
    kind = row.kind
    root = ctx.settings.thumbnail_dir
    cached = thumbnails.cache_path(root, media_id, size)
    if cached.exists():
        return Thumbnail(cached, False)
    if kind not in ("image", "video") or ctx.settings.thumbnails == "off":
        return Thumbnail(thumbnails.placeholder(root, kind, size), True, "no picture for this kind")
    # Only content that its probe recognised is decoded: never a file whose name alone says "video".
    if row.metadata_at is None or row.metadata_error is not None or row.mime is None:
        reason = "not probed yet" if row.metadata_at is None else "its content was not recognised"
        return Thumbnail(thumbnails.placeholder(root, kind, size), True, reason)
    try:
        opened = open_media(ctx, media_id)
    except (SourceUnavailable, NotFound) as exc:
        return Thumbnail(thumbnails.placeholder(root, kind, size), True, exc.message)
    try:
        thumbnails.make(opened.fh, kind, row.mime, root, media_id)
    except Exception as exc:  # damaged content: a placeholder, and a line in the log
        log.info("no thumbnail for %s: %s", media_id, exc)
        return Thumbnail(thumbnails.placeholder(root, kind, size), True, f"cannot be pictured: {exc}")
    finally:
        opened.close()
    return Thumbnail(cached, False)
