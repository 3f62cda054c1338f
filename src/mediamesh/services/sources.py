"""Registering, inspecting, probing and removing sources."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, distinct, func, insert, select, update

from mediamesh.backends import (
    Location,
    compose_location,
    credential_scope,
    kind_of,
    open_backend,
    overlaps,
    parse_location,
    registry,
)
from mediamesh.backends.base import Backend, ProbeResult
from mediamesh.backends.kernel_mounts import spec_for
from mediamesh.backends.registry import BackendKind
from mediamesh.catalog import events as event_log
from mediamesh.catalog import queries
from mediamesh.catalog.scans import scan_summary
from mediamesh.catalog.schema import files, scans, source_mounts, sources
from mediamesh.catalog.times import iso, now_utc
from mediamesh.context import Context, mapped_path
from mediamesh.crypto import SecretBox
from mediamesh.errors import Conflict, Forbidden, InvalidInput, LocationUnreachable
from mediamesh.scanning.filters import PathFilter, validate_globs
from mediamesh.scanning.safety import identity_changes, unmounted
from mediamesh.services.schedule import parse_schedule, validate_schedule

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]*\Z")


def validate_name(name: str) -> str:
    if not NAME_RE.match(name) or len(name) > 64:
        raise InvalidInput(
            f"invalid source name {name!r}: use lowercase letters, digits, '.', '_' and '-', "
            "starting with a letter or digit (at most 64 characters)"
        )
    return name


ROW_ID = queries.ROW_ID
find_source = queries.find_source


def secret_of(ctx: Context, row: Any) -> dict[str, Any] | None:
    return ctx.secret_of(row)


def backend_for(ctx: Context, row: Any) -> Backend:
    """The source's live backend, shared with every other user in this process (see Connections)."""
    return ctx.connections.get(row)


def source_kinds() -> list[dict[str, Any]]:
    return [k.public() for k in registry.kinds()]


def registered_kinds() -> list[BackendKind]:
    return registry.kinds()


def source_kind(name: str) -> BackendKind:
    return kind_of(name)


def location_text(location: str | None, kind: str | None, fields: dict[str, str] | None) -> str | None:
    """A location as typed, or made from a form's fields (``kind`` + ``fields``, the UI's form)."""
    if fields is not None:
        if location is not None:
            raise InvalidInput("give either a location or a kind with its fields, not both")
        if kind is None:
            raise InvalidInput("fields need the kind of source they describe")
        return compose_location(kind, fields)
    return location


def probe_location(ctx: Context, kind: str, location: str, secret: dict[str, Any] | None) -> ProbeResult:
    """Probe a location with a backend of its own, closed right after."""
    backend = open_backend(kind, location, secret, ctx.local_roots)
    try:
        return backend.probe()
    finally:
        backend.close()


def path_filter_for(row: Any) -> PathFilter:
    options = row.options or {}
    return PathFilter(tuple(options.get("include", ())), tuple(options.get("exclude", ())))


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
    last_scan = scan_summary(conn, last_scan_id) if last_scan_id else None
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "location": row.location,
        "enabled": row.enabled,
        "include": options.get("include", []),
        "exclude": options.get("exclude", []),
        "schedule": options.get("schedule"),
        "next_scan_at": _next_scan_at(options.get("schedule"), last_scan, row.enabled),
        "priority": options.get("priority", 0),
        "watch": options.get("watch", "auto"),
        #: True or False when set; None: the default (see add_source).
        "expect_mount": options.get("expect_mount"),
        "kernel_mount": options.get("kernel_mount"),
        #: Where scan workers (``mediamesh worker --name``) read this source as a local folder.
        "worker_paths": options.get("worker_paths", {}),
        "identity": row.identity or {},
        "health": {
            "status": row.health_status,
            "checked_at": iso(row.health_checked_at),
            "error": row.health_error,
            "latency_ms": row.health_latency_ms,
            "capacity_bytes": row.health_capacity_bytes,
            "free_bytes": row.health_free_bytes,
        },
        "files": {"present": counts.get("present", 0), "missing": counts.get("missing", 0)},
        "last_scan": last_scan,
        "mount": _mount(conn, row.id),
        "created_at": iso(row.created_at),
    }


#: How a source is watched for changes (see services/watch.py); ``on`` is taken as ``auto``.
WATCH_MODES = ("auto", "notify", "poll", "off")


def validate_watch(mode: str) -> str:
    value = mode.strip().lower()
    value = "auto" if value == "on" else value
    if value not in WATCH_MODES:
        raise InvalidInput(
            f"watch is one of auto (notifications where the source has them, else polling), notify, poll, "
            f"off; not {mode!r}"
        )
    return value


def validate_priority(priority: int) -> int:
    if not -1000 <= priority <= 1000:
        raise InvalidInput("priority must be between -1000 and 1000 (higher is preferred)")
    return priority


def _next_scan_at(schedule: str | None, last_scan: dict[str, Any] | None, enabled: bool) -> str | None:
    if not schedule or not enabled:
        return None
    try:  # a schedule stored before a rule changed never breaks a listing
        parsed = parse_schedule(schedule)
        started = last_scan["started_at"] if last_scan else None
        if started is None:
            return iso(now_utc()) if parsed.interval is not None else iso(parsed.next_after(now_utc()))
        return iso(parsed.next_after(datetime.fromisoformat(started)))
    except Exception:
        return None


def _mount(conn: Connection, source_id: int) -> dict[str, Any] | None:
    m = conn.execute(select(source_mounts).where(source_mounts.c.source_id == source_id)).first()
    if m is None:
        return None
    return {
        "state": m.state,
        "endpoint": m.endpoint,
        "connected_since": iso(m.connected_since),
        "last_error": m.last_error,
        "holder": m.holder,
        "updated_at": iso(m.updated_at),
        "watch": m.watch,
    }


def _new_location(
    ctx: Context, location: str, password: str | None, private_key: str | None = None
) -> tuple[Location, dict[str, Any] | None]:
    """A location given for a new source (or a test of one), and the credentials given with it. A local
    folder must be below the allowed roots (MEDIAMESH_LOCAL_ROOTS), never the data dir or a system folder."""
    loc = parse_location(location)
    secret = _secret(loc.kind, password, private_key)
    if kind_of(loc.kind).features.local_paths:  # a folder on this machine
        reason = ctx.local_roots.refusal(os.path.realpath(loc.display))
        if reason is not None:
            raise Forbidden(f"cannot use {loc.display}: {reason}")
    return loc, secret


def _secret(kind: str, password: str | None, private_key: str | None) -> dict[str, Any] | None:
    """The credentials given for a source of ``kind``, as its stored secret (None: none given)."""
    given = {k: v for k, v in (("password", password), ("private_key", private_key)) if v is not None}
    if not given:
        return None
    accepted = kind_of(kind).secret_options
    for name in given:
        if name not in accepted:
            what = name.replace("_", " ")
            raise InvalidInput(f"{kind} sources take no {what}")
    return given


def _stored_secret_for(ctx: Context, row: Any, kind: str, location: str) -> dict[str, Any] | None:
    """A source's stored secret for use with ``location``: only where it was given for (same host, port,
    share and user), so that nobody can send a stored password to a server of their choosing."""
    secret = secret_of(ctx, row)
    if secret is None:
        return None
    if row.kind != kind or credential_scope(row.kind, row.location) != credential_scope(kind, location):
        raise InvalidInput(
            "the stored password is only used for the server, share and user it was given for: "
            "type the password again for this location"
        )
    return secret


def _refuse_overlap(ctx: Context, kind: str, display: str, except_id: int | None = None) -> None:
    """Two sources over the same files (the same folder, one inside the other, two SMB sources on one
    share and path) would count every file there as two copies: refused, whatever --force says.

    Called before the write transaction, never inside it: comparing local folders resolves their real
    paths, and a hung mount behind one of them must hold up this request only, not the catalog's
    writer (scans); the write transaction checks exact duplicates again (_refuse_same)."""
    with ctx.catalog.read() as conn:
        others = conn.execute(
            select(sources.c.id, sources.c.name, sources.c.location).where(sources.c.kind == kind)
        ).all()
    for other in others:
        if other.id == except_id or not overlaps(kind, display, kind, other.location):
            continue
        if other.location == display:
            raise Conflict(f"{display} is already registered as source {other.name!r}")
        raise Conflict(
            f"{display} overlaps source {other.name!r} ({other.location}): one is inside the other, so "
            f"their files would count twice. Narrow {other.name!r} with --include/--exclude instead."
        )


def _refuse_same(conn: Connection, kind: str, display: str, except_id: int | None = None) -> None:
    """The same location registered meanwhile by another request (cheap: no path is resolved)."""
    query = select(sources.c.name).where(sources.c.kind == kind, sources.c.location == display)
    if except_id is not None:
        query = query.where(sources.c.id != except_id)
    clash = conn.execute(query).first()
    if clash is not None:
        raise Conflict(f"{display} is already registered as source {clash.name!r}")


def add_source(
    ctx: Context,
    name: str,
    location: str,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    force: bool = False,
    password: str | None = None,
    schedule: str | None = None,
    priority: int = 0,
    private_key: str | None = None,
    watch: str | None = None,
    expect_mount: bool | None = None,
    kernel_mount: bool = False,
) -> dict[str, Any]:
    """Register a source after checking it is a readable folder (``force`` registers it anyway). A kind
    that trusts on first use (an SFTP host key) is stored with what the check trusted. A folder that must
    be a mount point (``expect_mount``; by default one that is a mount point now or sits directly in
    MEDIAMESH_MOUNTS_DIR) is refused while nothing is mounted there.

    ``kernel_mount``: an SMB or NFS location is mounted by the kernel at MEDIAMESH_MOUNTS_DIR/{name}
    and registered as that local folder, remembering what to mount there again (option A)."""
    validate_name(name)
    if kernel_mount:
        return _add_kernel_mounted(
            ctx, name, location, password, include, exclude, force, schedule, priority, watch
        )
    options = {
        "include": validate_globs(include or []),
        "exclude": validate_globs(exclude or []),
        "schedule": validate_schedule(schedule),
        "priority": validate_priority(priority),
        "watch": validate_watch(watch or "auto"),
    }
    if expect_mount is not None:
        options["expect_mount"] = expect_mount
    loc, secret = _new_location(ctx, location, password, private_key)
    probe = probe_location(ctx, loc.kind, loc.display, secret)
    expected = _expected_mount(ctx, loc.kind, loc.display, expect_mount)
    probe = _unless_unmounted(probe, expected)
    if not probe.reachable and not force:
        hint = "use --force to register it anyway"
        if expected and (probe.error or "").startswith("not mounted"):
            hint += "; a plain folder, not a share: --no-expect-mount (expect_mount: false)"
        raise LocationUnreachable(f"cannot register {name!r}: {probe.error} ({hint})")
    if probe.reachable:
        loc = Location(loc.kind, kind_of(loc.kind).pin(loc.display, probe.identity))
    now = now_utc()
    with ctx.catalog.read() as conn:
        if conn.execute(select(sources.c.id).where(sources.c.name == name)).first() is not None:
            raise Conflict(f"a source named {name!r} already exists")
    _refuse_overlap(ctx, loc.kind, loc.display)
    with ctx.catalog.write() as conn:  # the name again: another request may have taken it meanwhile
        if conn.execute(select(sources.c.id).where(sources.c.name == name)).first() is not None:
            raise Conflict(f"a source named {name!r} already exists")
        _refuse_same(conn, loc.kind, loc.display)
        key = conn.execute(
            insert(sources).values(
                name=name,
                kind=loc.kind,
                location=loc.display,
                enabled=True,
                options=options,
                identity={**(probe.identity if probe.reachable else {}), **expected},
                features=kind_of(loc.kind).features.public(),
                secret=SecretBox.from_settings(ctx.settings).seal(secret) if secret else None,
                created_at=now,
                updated_at=now,
                **_health_values(probe, now),
            )
        ).inserted_primary_key
        assert key is not None
        return public(conn, find_source(conn, key[0]))


def _add_kernel_mounted(
    ctx: Context,
    name: str,
    location: str,
    password: str | None,
    include: list[str] | None,
    exclude: list[str] | None,
    force: bool,
    schedule: str | None,
    priority: int,
    watch: str | None,
) -> dict[str, Any]:
    settings = ctx.settings
    if settings.mount_shares != "on" or settings.mounts_dir is None:
        raise InvalidInput(
            "kernel mounts are off: set MEDIAMESH_MOUNT_SHARES=on and MEDIAMESH_MOUNTS_DIR (the image sets "
            "/mnt/sources), and run as root or with CAP_SYS_ADMIN; or add the location without "
            "--kernel-mount and mediamesh reads it itself, with no privilege"
        )
    loc = parse_location(location)
    secret = _secret(loc.kind, password, None)
    try:
        spec_for(loc.display, "/")
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    with ctx.catalog.read() as conn:
        if conn.execute(select(sources.c.id).where(sources.c.name == name)).first() is not None:
            raise Conflict(f"a source named {name!r} already exists")
    target = str(settings.mounts_dir / name)
    state = ctx.kernel_mounts.mount(name, loc.display, target, secret)
    if state.state != "mounted" and not force:
        ctx.kernel_mounts.unmount(name, target)
        raise LocationUnreachable(
            f"cannot mount {loc.display} at {target}: {state.error} (use --force to register it anyway)"
        )
    try:
        added = add_source(
            ctx,
            name,
            target,
            include,
            exclude,
            force,
            schedule=schedule,
            priority=priority,
            watch=watch,
            expect_mount=True,
        )
    except BaseException:
        ctx.kernel_mounts.unmount(name, target)
        raise
    with ctx.catalog.write() as conn:  # what to mount there again, and with which password (sealed)
        row = find_source(conn, added["id"])
        options = {**(row.options or {}), "kernel_mount": loc.display}
        sealed = SecretBox.from_settings(settings).seal(secret) if secret else None
        conn.execute(update(sources).where(sources.c.id == row.id).values(options=options, secret=sealed))
        return public(conn, find_source(conn, row.id))


def keep_kernel_mount(ctx: Context, row: Any) -> None:
    """Before a source's probe: its kernel mount, if it has one, is there and answers (mounted again
    when it went stale or failed). Bounded by the mount commands' deadlines."""
    url = (row.options or {}).get("kernel_mount")
    if url:
        ctx.kernel_mounts.check(row.name, url, row.location, secret_of(ctx, row))


def mount_states(ctx: Context) -> list[dict[str, Any]]:
    """Each source's mount state: read by mediamesh itself (network kinds), a folder that must be a
    mount point (mounted or not, as the last probe saw), or a plain folder; and any kernel mount."""
    with ctx.catalog.read() as conn:
        rows = conn.execute(select(sources).order_by(sources.c.name)).all()
        result = []
        for row in rows:
            identity = row.identity or {}
            in_app = kind_of(row.kind).expected_mount is None
            # normpath, not realpath: a listing never touches a folder (a hung mount would stall it).
            expected = not in_app and identity.get("mount_point") == os.path.normpath(row.location)
            if in_app:
                state = "in-app"  # read over the network by mediamesh: nothing to mount
            elif (row.health_error or "").startswith("not mounted"):
                state = "not mounted"
            elif not expected:
                state = "folder"
            else:
                state = "mounted" if row.health_status in ("online", "degraded") else "unknown"
            result.append(
                {
                    "source": row.name,
                    "kind": row.kind,
                    "location": row.location,
                    "state": state,
                    "mount_point": identity.get("mount_point"),
                    "fs_type": identity.get("fs_type"),
                    "health": row.health_status,
                    "error": row.health_error,
                    "kernel_mount": ctx.kernel_mounts.public(row.name),
                    "connection": _mount(conn, row.id),
                }
            )
    return result


def test_location(
    ctx: Context,
    location: str,
    password: str | None = None,
    source: str | None = None,
    private_key: str | None = None,
) -> dict[str, Any]:
    """Try a location before saving it (the UI's Test connection): what a probe sees, nothing stored.
    ``source`` lends a registered source's stored password when none is given (editing a source), and
    only for the server, share and user it was stored for. ``identity`` shows what would be recorded,
    an SFTP server's host key among it, for the user to compare with the server's."""
    loc, secret = _new_location(ctx, location, password, private_key)
    if secret is None and source is not None:
        with ctx.catalog.read() as conn:
            row = find_source(conn, source)
        secret = _stored_secret_for(ctx, row, loc.kind, loc.display)
    probe = probe_location(ctx, loc.kind, loc.display, secret)
    probe = _unless_unmounted(probe, _expected_mount(ctx, loc.kind, loc.display, None))
    return {
        "kind": loc.kind,
        "location": loc.display,
        "reachable": probe.reachable,
        "error": probe.error,
        "latency_ms": probe.latency_ms,
        "capacity_bytes": probe.capacity_bytes,
        "free_bytes": probe.free_bytes,
        "identity": probe.identity,
    }


def _expected_mount(ctx: Context, kind: str, display: str, expect: bool | None) -> dict[str, str]:
    """The identity a source must show to count as mounted ({} for kinds that are never mount points)."""
    hook = kind_of(kind).expected_mount
    if hook is None:
        if expect:
            raise InvalidInput(f"{kind} sources are read by mediamesh itself: they are never a mount point")
        return {}
    mounts_dir = ctx.settings.mounts_dir
    return hook(display, expect, str(mounts_dir) if mounts_dir is not None else None)


def _unless_unmounted(probe: ProbeResult, expected: Mapping[str, str]) -> ProbeResult:
    """A probe of a folder that must be a mount point and is not: unreachable, "not mounted"."""
    if probe.reachable and (why := unmounted(expected, probe.identity)):
        return ProbeResult(reachable=False, error=why)
    return probe


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


def _count_media_per_source(conn: Connection) -> dict[int, int]:
    rows = conn.execute(
        select(files.c.source_id, func.count(distinct(files.c.media_id)))
        .where(files.c.state == "present")
        .group_by(files.c.source_id)
    )
    return {int(source_id): int(n) for source_id, n in rows}


def media_per_source(ctx: Context) -> dict[int, int]:
    """Source id -> media with a present location there (may lag a running scan by about 10 s).

    A pass over every location (0.4 s for 133k): made in the background when the catalog changed, at
    most every 10 s while a scan runs; the last one is answered meanwhile."""
    cache = ctx.caches.named("media-per-source", ttl=300.0, min_age=10.0)
    with ctx.catalog.read() as conn:
        counts: dict[int, int] = cache.get(
            ctx.catalog, ("media-per-source",), ctx.catalog.generation, _count_media_per_source, conn
        )
    return counts


def media_per_source_current(ctx: Context) -> bool:
    """The media counts per source match the catalog as it is now (the dashboard looks again until so)."""
    cache = ctx.caches.named("media-per-source", ttl=300.0, min_age=10.0)
    return cache.current(("media-per-source",), ctx.catalog.generation)


def source_names(ctx: Context) -> list[str]:
    """Every source's name, for choosing one (no counts: cheap)."""
    with ctx.catalog.read() as conn:
        return list(conn.execute(select(sources.c.name).order_by(sources.c.name)).scalars())


def source_ref(ctx: Context, id_or_name: str | int) -> tuple[int, str]:
    """(id, name) of a source, without what show_source computes besides (counts, last scan)."""
    with ctx.catalog.read() as conn:
        row = find_source(conn, id_or_name)
    return int(row.id), str(row.name)


def show_source(ctx: Context, id_or_name: str) -> dict[str, Any]:
    with ctx.catalog.read() as conn:
        return public(conn, find_source(conn, id_or_name))


#: A probe slower than this (ms) makes a reachable source "degraded".
SLOW_PROBE_MS = 2000.0


def health_values(row: Any, probe: ProbeResult, now: datetime | None = None) -> dict[str, Any]:
    """The health columns for what a probe saw: online, degraded (slow, or another filesystem than the one
    registered), or offline. A source registered without an identity gets the one seen now."""
    values = _health_values(probe, now or now_utc())
    if not probe.reachable:
        return values
    recorded = row.identity or {}
    if why := unmounted(recorded, probe.identity):
        return _health_values(ProbeResult(reachable=False, error=why), now or now_utc())
    filled = not recorded.keys() >= probe.identity.keys()
    if recorded and filled and not identity_changes(recorded, probe.identity):
        # Registered while its share was not mounted (only the mount point was known): the rest now.
        values["identity"] = {**probe.identity, **recorded}
    elif not recorded:  # first seen now (registered with --force while offline): trusted from now on
        values["identity"] = probe.identity
        pinned = kind_of(row.kind).pin(row.location, probe.identity)
        if pinned != row.location:
            values["location"] = pinned
    elif changes := identity_changes(recorded, probe.identity):  # the scan's own test (scanning/safety.py)
        values.update(
            health_status="degraded",
            health_error=f"filesystem differs from registration ({'; '.join(changes)})",
        )
    elif probe.latency_ms is not None and probe.latency_ms > SLOW_PROBE_MS:
        values.update(
            health_status="degraded", health_error=f"slow: the probe took {probe.latency_ms:.0f} ms"
        )
    return values


def record_health(ctx: Context, source_id: int, values: dict[str, Any]) -> None:
    with ctx.catalog.write() as conn:
        _write_health(conn, source_id, values)


def _write_health(conn: Connection, source_id: int, values: dict[str, Any]) -> None:
    """Update a source's health; a new status (online, degraded, offline) is an event."""
    before = conn.execute(
        select(sources.c.name, sources.c.health_status).where(sources.c.id == source_id)
    ).first()
    conn.execute(update(sources).where(sources.c.id == source_id).values(**values))
    status = values.get("health_status")
    if before is not None and status in ("online", "degraded", "offline") and status != before.health_status:
        event_log.append(
            conn,
            f"source.{status}",
            {"source": before.name, "was": before.health_status, "error": values.get("health_error")},
            source_id=source_id,
        )


def check_source(ctx: Context, id_or_name: str) -> dict[str, Any]:
    """Probe a source now and record its health."""
    with ctx.catalog.read() as conn:
        row = find_source(conn, id_or_name)
    if row.enabled:
        keep_kernel_mount(ctx, row)  # a kernel-mounted source: mounted (again) first
    # A new connection, as Test connection makes: what a session made before would say is not the
    # question (a hung NAS holds it for the full request timeout, twice).
    probe = probe_location(ctx, row.kind, row.location, secret_of(ctx, row))
    if not probe.reachable:
        ctx.connections.reset(row.id)  # every user of the source connects afresh
    record_health(ctx, row.id, health_values(row, probe))
    return show_source(ctx, str(row.id))


def update_source(
    ctx: Context,
    id_or_name: str,
    *,
    location: str | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    password: str | None = None,
    enabled: bool | None = None,
    force: bool = False,
    schedule: str | None = None,
    priority: int | None = None,
    may_move_local: bool = True,
    private_key: str | None = None,
    watch: str | None = None,
    expect_mount: bool | None = None,
    worker_paths: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Change a source. A new location (the share moved, or is mounted elsewhere) is checked like a new
    registration and its identity recorded afresh; file records and media ids stay, being relative to the
    root. A new SMB server, share or user needs the password again; ``may_move_local`` is False for a
    caller (an API token below admin) that may not point a local source elsewhere."""
    with ctx.catalog.read() as conn:
        row = find_source(conn, id_or_name)
    values: dict[str, Any] = {"updated_at": now_utc()}
    options = dict(row.options or {})
    if include is not None:
        options["include"] = validate_globs(include)
    if exclude is not None:
        options["exclude"] = validate_globs(exclude)
    if schedule is not None:  # "" or "off" clears it
        options["schedule"] = validate_schedule(schedule)
    if priority is not None:
        options["priority"] = validate_priority(priority)
    if watch is not None:
        options["watch"] = validate_watch(watch)
    if expect_mount is not None:
        options["expect_mount"] = expect_mount
    if worker_paths is not None:
        if not may_move_local:  # a folder a worker will read, on a machine of its own: like a local source
            raise Forbidden("setting where workers read a source needs an admin token")
        options["worker_paths"] = validate_worker_paths(options.get("worker_paths", {}), worker_paths)
        known = options.get("worker_identities", {})
        options["worker_identities"] = {
            name: identity
            for name, identity in known.items()
            if options["worker_paths"].get(name) == identity.get("_path")
        }  # a new path for a worker is a new registration for it: its identity is recorded afresh
    values["options"] = options
    kind, display = row.kind, row.location
    if location is not None and options.get("kernel_mount") and location != row.location:
        # Its folder is the one mediamesh mounts at; elsewhere, its share would be mounted over anything.
        raise InvalidInput(
            f"{row.name!r} is a folder mediamesh mounts {options['kernel_mount']} at: remove it and add "
            "the new location instead"
        )
    if location is not None:
        loc, _ = _new_location(ctx, location, password, private_key)
        if loc.kind != row.kind:
            raise InvalidInput(f"a {row.kind} source cannot move to a {loc.kind} location; add a new source")
        if kind_of(loc.kind).features.local_paths and loc.display != row.location and not may_move_local:
            raise Forbidden("pointing a local source at another folder needs an admin token")
        kind, display = loc.kind, loc.display
        # A new folder on the same server keeps the host key trusted for it (typed without one).
        kept = kind_of(kind).pin(display, row.identity or {})
        if credential_scope(kind, kept) == credential_scope(row.kind, row.location):
            display = kept
        values["location"] = display
    given = _secret(row.kind, password, private_key)
    if given is not None:
        # A new key replaces what was stored; a password alone replaces the password (or, beside a
        # stored key, the key's passphrase).
        new_secret = given if "private_key" in given else {**(secret_of(ctx, row) or {}), **given}
        values["secret"] = SecretBox.from_settings(ctx.settings).seal(new_secret)
        secret: dict[str, Any] | None = new_secret
    else:
        secret = _stored_secret_for(ctx, row, kind, display)
    if location is not None or given is not None or expect_mount is not None:
        probe = probe_location(ctx, kind, display, secret)
        expected = _expected_mount(ctx, kind, display, options.get("expect_mount"))
        probe = _unless_unmounted(probe, expected)
        if not probe.reachable and not force:
            raise LocationUnreachable(
                f"cannot reach {display}: {probe.error} (use --force to change it anyway)"
            )
        values.update(_health_values(probe, now_utc()))
        if location is not None or expect_mount is not None:
            values["identity"] = {**(probe.identity if probe.reachable else {}), **expected}
            if probe.reachable:
                display = kind_of(kind).pin(display, probe.identity)
                values["location"] = display
    if enabled is not None:
        values["enabled"] = enabled
    if location is not None:
        _refuse_overlap(ctx, kind, display, row.id)
    with ctx.catalog.write() as conn:
        if location is not None:
            _refuse_same(conn, kind, display, row.id)
        conn.execute(update(sources).where(sources.c.id == row.id).values(**values))
        return public(conn, find_source(conn, row.id))


def scan_identity(ctx: Context, row: Any) -> dict[str, str]:
    """The identity a scan compares: the source's own; or, for a worker that reads the source at a path
    of its own (``worker_paths``), the identity that path showed the first time, recorded then (as a new
    source's is at registration), so that an unmounted volume on the NAS is caught there too."""
    path = mapped_path(row, ctx.worker_name)
    if path is None or ctx.worker_name is None:
        return dict(row.identity or {})
    known = (row.options or {}).get("worker_identities", {}).get(ctx.worker_name)
    if known and known.get("_path") == path:
        return {k: v for k, v in known.items() if k != "_path"}
    probe = backend_for(ctx, row).probe()
    if not probe.reachable:
        return {}  # the scan's own check finds it unreachable and says so
    identity = dict(probe.identity)
    with ctx.catalog.write(bump=False) as conn:
        options = dict(conn.execute(select(sources.c.options).where(sources.c.id == row.id)).scalar() or {})
        options["worker_identities"] = {
            **options.get("worker_identities", {}),
            ctx.worker_name: {**identity, "_path": path},
        }
        conn.execute(update(sources).where(sources.c.id == row.id).values(options=options))
    return identity


#: A worker's name: what ``mediamesh worker --name`` takes (the host name by default).
_WORKER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def validate_worker_name(name: str) -> str:
    if not _WORKER_NAME.fullmatch(name):
        raise InvalidInput(
            f"worker name {name!r}: letters, digits, '.', '_' and '-' only (at most 64, as --name takes)"
        )
    return name


def validate_worker_paths(current: dict[str, str], changes: dict[str, str]) -> dict[str, str]:
    """Merge worker path changes into ``current``: ``{name: "/volume1/video"}`` sets where that worker
    reads the source as a local folder; ``{name: ""}`` removes it."""
    merged = dict(current)
    for name, path in changes.items():
        validate_worker_name(name)
        if not path:
            merged.pop(name, None)
            continue
        if "\0" in path or not path.startswith("/") or os.path.normpath(path) != path:
            raise InvalidInput(
                f"worker path {path!r} for {name!r}: an absolute folder as that worker sees it (/volume1/video)"
            )
        merged[name] = path
    if len(merged) > 32:
        raise InvalidInput("at most 32 worker paths per source")
    return merged


def secret_matches(
    ctx: Context, id_or_name: str, password: str | None = None, private_key: str | None = None
) -> bool:
    """Whether the stored credentials are these (a credential not given is not compared)."""
    with ctx.catalog.read() as conn:
        row = find_source(conn, id_or_name)
    stored = secret_of(ctx, row) or {}
    given = {"password": password, "private_key": private_key}
    return all(stored.get(k) == v for k, v in given.items() if v is not None)


def set_mounted(ctx: Context, id_or_name: str, mounted: bool) -> dict[str, Any]:
    """Mount: enable a source and connect now. Unmount: disconnect and leave it alone (no probes, no scans)
    until mounted again; its files show ``offline`` and nothing about them changes."""
    with ctx.catalog.read() as conn:
        row = find_source(conn, id_or_name)
    update_source(ctx, str(row.id), enabled=mounted)
    if mounted:
        return check_source(ctx, str(row.id))
    ctx.connections.reset(row.id)
    record_health(ctx, row.id, {"health_status": "unknown", "health_error": "unmounted"})
    save_mount(ctx, row.id, "disconnected", None, None)
    return show_source(ctx, str(row.id))


def save_mount(ctx: Context, source_id: int, state: str, endpoint: str | None, error: str | None) -> None:
    """Record the live connection state of a source, as held by this process."""
    with ctx.catalog.write() as conn:
        _write_mount(conn, source_id, state, endpoint, error)


def record_probe(
    ctx: Context, source_id: int, values: dict[str, Any], state: str, endpoint: str | None, error: str | None
) -> None:
    """Record a probe's health and the connection state it implies in one transaction, so that no
    reader sees a source offline whose connection still reads as it was."""
    with ctx.catalog.write() as conn:
        _write_health(conn, source_id, values)
        _write_mount(conn, source_id, state, endpoint, error)


def save_watch(ctx: Context, source_id: int, info: dict[str, Any] | None) -> None:
    """Record how this process watches a source (shown with its connection state); a new way of
    watching (notify, poll, waiting, off) is an event, so that the dashboard shows it at once."""
    with ctx.catalog.write(bump=False) as conn:
        before = conn.execute(
            select(source_mounts.c.watch).where(source_mounts.c.source_id == source_id)
        ).first()
        name = conn.execute(select(sources.c.name).where(sources.c.id == source_id)).scalar()
        if name is None:
            return
        if before is None:
            conn.execute(
                insert(source_mounts).values(
                    source_id=source_id, state="disconnected", updated_at=now_utc(), watch=info
                )
            )
        else:
            conn.execute(
                update(source_mounts).where(source_mounts.c.source_id == source_id).values(watch=info)
            )
        old: dict[str, Any] = (before.watch or {}) if before is not None else {}
        new: dict[str, Any] = info or {}
        if (new.get("mode"), new.get("folders")) != (old.get("mode"), old.get("folders")):
            event_log.append(
                conn, "source.watching", {**new, "source": name, "was": old.get("mode")}, source_id=source_id
            )


def _write_mount(
    conn: Connection, source_id: int, state: str, endpoint: str | None, error: str | None
) -> None:
    now = now_utc()
    holder = f"{socket.gethostname()}:{os.getpid()}"
    current = conn.execute(
        select(source_mounts.c.state, source_mounts.c.connected_since).where(
            source_mounts.c.source_id == source_id
        )
    ).first()
    since = current.connected_since if current is not None and current.state == state == "connected" else None
    values = {
        "state": state,
        "endpoint": endpoint,
        "last_error": error,
        "holder": holder,
        "updated_at": now,
        "connected_since": since or (now if state == "connected" else None),
    }
    if current is None:
        conn.execute(insert(source_mounts).values(source_id=source_id, **values))
    else:
        conn.execute(update(source_mounts).where(source_mounts.c.source_id == source_id).values(**values))


def remove_source(ctx: Context, id_or_name: str) -> dict[str, Any]:
    """Forget a source and its file records. Media files themselves are never touched."""
    with ctx.catalog.write() as conn:
        row = find_source(conn, id_or_name)
        removed = conn.execute(delete(files).where(files.c.source_id == row.id)).rowcount
        conn.execute(delete(scans).where(scans.c.source_id == row.id))
        conn.execute(delete(sources).where(sources.c.id == row.id))
    ctx.connections.reset(row.id)
    if (row.options or {}).get("kernel_mount"):
        ctx.kernel_mounts.unmount(row.name, row.location)
    return {"id": row.id, "name": row.name, "files_forgotten": removed}


def prune_missing(ctx: Context, id_or_name: str) -> dict[str, Any]:
    """Forget the records of files that are missing on a source (an explicit action, never automatic)."""
    with ctx.catalog.write() as conn:
        row = find_source(conn, id_or_name)
        removed = conn.execute(
            delete(files).where(files.c.source_id == row.id, files.c.state == "missing")
        ).rowcount
    return {"source": row.name, "files_forgotten": removed}
