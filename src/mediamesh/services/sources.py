"""Registering, inspecting, probing and removing sources."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from mediamesh.backends import WITH_PASSWORD, open_backend, parse_location
from mediamesh.backends.base import Backend, ProbeResult
from mediamesh.catalog.scans import scan_summary
from mediamesh.catalog.schema import files, scans, sources
from mediamesh.context import Context
from mediamesh.crypto import SecretBox
from mediamesh.errors import Conflict, InvalidInput, NotFound, SourceUnavailable
from mediamesh.scanning.filters import PathFilter, validate_globs

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]*\Z")


def validate_name(name: str) -> str:
    if not NAME_RE.match(name) or len(name) > 64:
        raise InvalidInput(
            f"invalid source name {name!r}: use lowercase letters, digits, '.', '_' and '-', "
            "starting with a letter or digit (at most 64 characters)"
        )
    return name


def find_source(conn: Connection, id_or_name: str | int) -> Any:
    """The source row named by numeric id or by name, or NotFound."""
    text = str(id_or_name)
    cond = sources.c.id == int(text) if text.isdigit() else sources.c.name == text
    row = conn.execute(select(sources).where(cond)).first()
    if row is None:
        raise NotFound(f"no source {text!r} (see 'mediamesh source list')")
    return row


def backend_for(ctx: Context, row: Any) -> Backend:
    """The backend of a stored source, its password decrypted only here, only for this use."""
    secret = SecretBox.from_settings(ctx.settings).open(row.secret) if row.secret else None
    return open_backend(row.kind, row.location, secret)


def path_filter_for(row: Any) -> PathFilter:
    options = row.options or {}
    return PathFilter(tuple(options.get("include", ())), tuple(options.get("exclude", ())))


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).isoformat()


def public(conn: Connection, row: Any) -> dict[str, Any]:
    """What a source shows: never a secret."""
    counts: dict[str, int] = {
        state: int(n)
        for state, n in conn.execute(
            select(files.c.state, func.count()).where(files.c.source_id == row.id).group_by(files.c.state)
        )
    }
    last_scan_id = conn.execute(
        select(func.max(scans.c.id)).where(scans.c.source_id == row.id)
    ).scalar_one_or_none()
    options = row.options or {}
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "location": row.location,
        "enabled": row.enabled,
        "include": options.get("include", []),
        "exclude": options.get("exclude", []),
        "identity": row.identity or {},
        "health": {
            "status": row.health_status,
            "checked_at": _iso(row.health_checked_at),
            "error": row.health_error,
            "latency_ms": row.health_latency_ms,
            "capacity_bytes": row.health_capacity_bytes,
            "free_bytes": row.health_free_bytes,
        },
        "files": {"present": counts.get("present", 0), "missing": counts.get("missing", 0)},
        "last_scan": scan_summary(conn, last_scan_id) if last_scan_id else None,
        "created_at": _iso(row.created_at),
    }


def add_source(
    ctx: Context,
    name: str,
    location: str,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    force: bool = False,
    password: str | None = None,
) -> dict[str, Any]:
    """Register a source after checking it is a readable folder (``force`` registers it anyway)."""
    validate_name(name)
    loc = parse_location(location)
    if password is not None and loc.kind not in WITH_PASSWORD:
        raise InvalidInput(f"{loc.kind} sources take no password")
    options = {"include": validate_globs(include or []), "exclude": validate_globs(exclude or [])}
    secret = {"password": password} if password is not None else None
    backend = open_backend(loc.kind, loc.display, secret)
    try:
        probe = backend.probe()
    finally:
        backend.close()
    if not probe.reachable and not force:
        raise SourceUnavailable(
            f"cannot register {name!r}: {probe.error} (use --force to register it anyway)"
        )
    now = datetime.now(UTC)
    with ctx.catalog.write() as conn:
        if conn.execute(select(sources.c.id).where(sources.c.name == name)).first() is not None:
            raise Conflict(f"a source named {name!r} already exists")
        clash = conn.execute(
            select(sources.c.name).where(sources.c.kind == loc.kind, sources.c.location == loc.display)
        ).first()
        if clash is not None and not force:
            raise Conflict(f"{loc.display} is already registered as source {clash.name!r}")
        key = conn.execute(
            insert(sources).values(
                name=name,
                kind=loc.kind,
                location=loc.display,
                enabled=True,
                options=options,
                identity=probe.identity if probe.reachable else {},
                secret=SecretBox.from_settings(ctx.settings).seal(secret) if secret else None,
                created_at=now,
                updated_at=now,
                **_health_values(probe, now),
            )
        ).inserted_primary_key
        assert key is not None
        return public(conn, find_source(conn, key[0]))


def _health_values(probe: ProbeResult, now: datetime) -> dict[str, Any]:
    return {
        "health_status": "online" if probe.reachable else "offline",
        "health_checked_at": now,
        "health_error": probe.error,
        "health_latency_ms": probe.latency_ms,
        "health_capacity_bytes": probe.capacity_bytes,
        "health_free_bytes": probe.free_bytes,
    }


def list_sources(ctx: Context) -> list[dict[str, Any]]:
    with ctx.catalog.read() as conn:
        rows = conn.execute(select(sources).order_by(sources.c.name)).all()
        return [public(conn, row) for row in rows]


def show_source(ctx: Context, id_or_name: str) -> dict[str, Any]:
    with ctx.catalog.read() as conn:
        return public(conn, find_source(conn, id_or_name))


def check_source(ctx: Context, id_or_name: str) -> dict[str, Any]:
    """Probe a source now and record its health (a source registered without an identity gets one)."""
    with ctx.catalog.read() as conn:
        row = find_source(conn, id_or_name)
    backend = backend_for(ctx, row)
    try:
        probe = backend.probe()
    finally:
        backend.close()
    values = _health_values(probe, datetime.now(UTC))
    if probe.reachable and probe.identity != (row.identity or {}):
        if row.identity:
            changes = ", ".join(
                f"{k}: {row.identity.get(k)!r} -> {probe.identity.get(k)!r}"
                for k in sorted(row.identity)
                if row.identity.get(k) != probe.identity.get(k)
            )
            values.update(
                health_status="degraded", health_error=f"filesystem differs from registration ({changes})"
            )
        else:
            values["identity"] = probe.identity
    with ctx.catalog.write() as conn:
        conn.execute(update(sources).where(sources.c.id == row.id).values(**values))
        return public(conn, find_source(conn, row.id))


def remove_source(ctx: Context, id_or_name: str) -> dict[str, Any]:
    """Forget a source and its file records. Media files themselves are never touched."""
    with ctx.catalog.write() as conn:
        row = find_source(conn, id_or_name)
        removed = conn.execute(delete(files).where(files.c.source_id == row.id)).rowcount
        conn.execute(delete(scans).where(scans.c.source_id == row.id))
        conn.execute(delete(sources).where(sources.c.id == row.id))
    return {"id": row.id, "name": row.name, "files_forgotten": removed}


def prune_missing(ctx: Context, id_or_name: str) -> dict[str, Any]:
    """Forget the records of files that are missing on a source (an explicit action, never automatic)."""
    with ctx.catalog.write() as conn:
        row = find_source(conn, id_or_name)
        removed = conn.execute(
            delete(files).where(files.c.source_id == row.id, files.c.state == "missing")
        ).rowcount
    return {"source": row.name, "files_forgotten": removed}
