"""Query pieces used across services, defined once: lookups by id or name, what "reachable now" means,
and the media id format. Services compose them; nothing here touches a source."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, exists, or_, select

from mediamesh.catalog.schema import files, media, projects, replaced, sources
from mediamesh.errors import InvalidInput, NotFound

#: A content id: BLAKE3-256 in lowercase hex, as ``b3sum`` prints it.
MEDIA_ID_RE = re.compile(r"[0-9a-f]{64}\Z")
#: A row id as people type it: ASCII digits only ("²".isdigit() is true), and short (no overflow).
ROW_ID = re.compile(r"[0-9]{1,18}")

#: A present file on a source that is offline, or unmounted, cannot be reached now.
SOURCE_UNREACHABLE = or_(sources.c.health_status == "offline", sources.c.enabled.is_(False))
#: A location's state as shown: ``offline`` is derived from its source's health, never stored per row.
LOCATION_STATE = case((and_(files.c.state == "present", SOURCE_UNREACHABLE), "offline"), else_=files.c.state)


#: A location's states (``offline`` derived from its source's health).
STATES = ("present", "missing", "offline")
#: A media item's: also ``replaced`` (no location left because its file was edited in place).
MEDIA_STATES = ("present", "offline", "missing", "replaced")


def has_location(*conds: ColumnElement[bool]) -> ColumnElement[bool]:
    """The media (of the outer query) has a location that meets ``conds`` (over files and sources)."""
    return exists(
        select(files.c.id)
        .join(sources, sources.c.id == files.c.source_id)
        .where(files.c.media_id == media.c.id, *conds)
    )


def _replaced_only() -> ColumnElement[bool]:
    """No location at all, and a file that held it was edited in place (catalog/schema.py: replaced)."""
    history = exists(select(replaced.c.id).where(replaced.c.media_id == media.c.id))
    return and_(~exists(select(files.c.id).where(files.c.media_id == media.c.id)), history)


def state_filter(state: str) -> ColumnElement[bool]:
    """Media by where their copies are: ``present`` (one reachable now), ``offline`` (present copies, all
    on sources that cannot be reached now), ``missing`` (no present copy: gone, not replaced) or
    ``replaced`` (its only file was edited in place: the content lives on under another id)."""
    reachable = has_location(files.c.state == "present", ~SOURCE_UNREACHABLE)
    if state == "present":
        return reachable
    on_offline = has_location(files.c.state == "present", SOURCE_UNREACHABLE)
    if state == "offline":
        return and_(~reachable, on_offline)
    if state == "missing":
        return and_(~has_location(files.c.state == "present"), ~_replaced_only())
    if state == "replaced":
        return _replaced_only()
    raise InvalidInput(f"invalid state {state!r}: use one of {', '.join(MEDIA_STATES)}")


def parse_media_id(text: str) -> str:
    """A media id as given by a person (any case, spaces around), or InvalidInput."""
    media_id = text.strip().lower()
    if not MEDIA_ID_RE.match(media_id):
        raise InvalidInput(f"{text!r} is not a media id (64 hex characters, as b3sum prints)")
    return media_id


#: The shortest prefix of a media id taken for the id (as git takes abbreviated hashes).
MIN_PREFIX = 6
_HEX = re.compile(r"[0-9a-f]+\Z")


def resolve_media_id(conn: Connection, text: str) -> str:
    """The id of a media item of the catalog, given whole or as a unique prefix (at least MIN_PREFIX hex
    digits): NotFound when there is none, InvalidInput when several start so."""
    wanted = text.strip().lower()
    if MEDIA_ID_RE.match(wanted):
        if conn.execute(select(media.c.id).where(media.c.id == wanted)).first() is None:
            raise NotFound(f"no media {wanted}")
        return wanted
    if len(wanted) < MIN_PREFIX or not _HEX.match(wanted):
        return parse_media_id(text)  # says what a media id looks like
    found = list(
        conn.execute(
            select(media.c.id)
            .where(media.c.id >= wanted, media.c.id < wanted + "g")
            .order_by(media.c.id)
            .limit(2)
        ).scalars()
    )
    if not found:
        raise NotFound(f"no media starts with {wanted}")
    if len(found) > 1:
        raise InvalidInput(f"{wanted} is the start of several media ids: give more of it")
    return str(found[0])


def find_source(conn: Connection, id_or_name: str | int) -> Any:
    """The source row named by numeric id or by name, or NotFound."""
    text = str(id_or_name)
    cond = sources.c.id == int(text) if ROW_ID.fullmatch(text) else sources.c.name == text
    row = conn.execute(select(sources).where(cond)).first()
    if row is None:
        raise NotFound(f"no source {text!r} (see 'mediamesh source list')")
    return row


def find_project(conn: Connection, id_or_name: str | int) -> Any:
    """By name first (a folder may well be called 2024), then by numeric id."""
    text = str(id_or_name)
    row = conn.execute(select(projects).where(projects.c.name == text)).first()
    if row is None and ROW_ID.fullmatch(text):
        row = conn.execute(select(projects).where(projects.c.id == int(text))).first()
    if row is None:
        raise NotFound(f"no project {text!r} (see 'mediamesh project list')")
    return row
