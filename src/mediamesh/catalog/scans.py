"""The ``scans`` rows: one running scan per source, heartbeats, and abandoned scans found out."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from mediamesh.catalog import events as event_log
from mediamesh.catalog.database import Catalog
from mediamesh.catalog.processes import process_state
from mediamesh.catalog.schema import scans
from mediamesh.catalog.times import aware, iso, now_utc
from mediamesh.errors import Conflict

#: A running scan whose heartbeat is older than this, on another host, is taken as abandoned.
STALE_AFTER = timedelta(minutes=2)

SUMMARY_FIELDS = (
    "files_seen",
    "files_new",
    "files_changed",
    "files_moved",
    "files_missing",
    "files_unchanged",
    "files_deferred",
    "bytes_hashed",
    "bytes_read",
    "errors_count",
)


def _alive(row: Any) -> bool:
    state = process_state(row.host, row.pid)
    if state in ("self", "foreign"):
        return True
    if state == "gone":
        return False
    # Another host, or a running PID that may have been reused: trust it only while it keeps beating.
    beat = aware(row.heartbeat_at) or aware(row.started_at)
    return beat is not None and now_utc() - beat < STALE_AFTER


def _abandon(conn: Connection, scan_id: int) -> None:
    conn.execute(
        update(scans)
        .where(scans.c.id == scan_id, scans.c.status == "running")
        .values(
            status="interrupted", finished_at=now_utc(), error="abandoned: the process running it stopped"
        )
    )


def begin_scan(catalog: Catalog, source_id: int, path: str, trigger: str = "cli") -> int:
    """Create a running scan, or refuse when a live scan of this source is running."""
    with catalog.write() as conn:
        running = conn.execute(
            select(scans.c.id, scans.c.host, scans.c.pid, scans.c.heartbeat_at, scans.c.started_at).where(
                scans.c.source_id == source_id, scans.c.status == "running"
            )
        ).all()
        for row in running:
            if _alive(row):
                raise Conflict(f"scan {row.id} of this source is still running; wait for it or stop it first")
            _abandon(conn, row.id)
        now = now_utc()
        result = conn.execute(
            insert(scans).values(
                source_id=source_id,
                path=path,
                trigger=trigger,
                status="running",
                started_at=now,
                heartbeat_at=now,
                host=socket.gethostname(),
                pid=os.getpid(),
                errors=[],
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        scan_id = int(key[0])
        event_log.append(
            conn,
            "scan.started",
            {"scan": scan_id, "source": _source_name(conn, source_id), "path": path, "trigger": trigger},
            source_id=source_id,
        )
        return scan_id


def _source_name(conn: Connection, source_id: int) -> str | None:
    from mediamesh.catalog.schema import sources

    name: str | None = conn.execute(select(sources.c.name).where(sources.c.id == source_id)).scalar()
    return name


def recover_abandoned(catalog: Catalog) -> int:
    """Mark running scans whose process is gone as interrupted (at start-up). Returns how many."""
    with catalog.write() as conn:
        rows = conn.execute(
            select(scans.c.id, scans.c.host, scans.c.pid, scans.c.heartbeat_at, scans.c.started_at).where(
                scans.c.status == "running"
            )
        ).all()
        dead = [row.id for row in rows if not _alive(row)]
        for scan_id in dead:
            _abandon(conn, scan_id)
    return len(dead)


def beat_scan(catalog: Catalog, scan_id: int) -> None:
    """The scan is alive (written by a timer, not by progress: see scanning/pipeline.py)."""
    with catalog.write(bump=False) as conn:
        conn.execute(
            update(scans)
            .where(scans.c.id == scan_id, scans.c.status == "running")
            .values(heartbeat_at=now_utc())
        )


def save_progress(catalog: Catalog, scan_id: int, values: dict[str, Any]) -> None:
    with catalog.write() as conn:
        conn.execute(update(scans).where(scans.c.id == scan_id).values(heartbeat_at=now_utc(), **values))


def finish_scan(catalog: Catalog, scan_id: int, status: str, values: dict[str, Any]) -> None:
    with catalog.write() as conn:
        conn.execute(
            update(scans)
            .where(scans.c.id == scan_id)
            .values(heartbeat_at=now_utc(), status=status, finished_at=now_utc(), **values)
        )
        summary = scan_summary(conn, scan_id)
        if summary is not None:
            data = {k: summary[k] for k in ("source", "status", "path", "trigger", "error", *SUMMARY_FIELDS)}
            source_id = conn.execute(select(scans.c.source_id).where(scans.c.id == scan_id)).scalar()
            event_log.append(conn, "scan.finished", {"scan": scan_id, **data}, source_id=source_id)


def scan_summary(conn: Connection, scan_id: int) -> dict[str, Any] | None:
    from mediamesh.catalog.schema import sources

    row = conn.execute(
        select(scans, sources.c.name.label("source_name"))
        .join(sources, sources.c.id == scans.c.source_id)
        .where(scans.c.id == scan_id)
    ).first()
    if row is None:
        return None
    out: dict[str, Any] = {"id": row.id, "source": row.source_name, "status": row.status, "path": row.path}
    out.update({name: getattr(row, name) for name in SUMMARY_FIELDS})
    out["errors"] = row.errors or []
    out["error"] = row.error
    out["started_at"] = iso(row.started_at)
    out["finished_at"] = iso(row.finished_at)
    out["trigger"] = row.trigger
    out["heartbeat_at"] = iso(row.heartbeat_at)
    # Live progress: the folder being read, and rates over the time so far.
    out["current_path"] = row.current_path
    started, ended = aware(row.started_at), aware(row.finished_at) or now_utc()
    elapsed = max((ended - started).total_seconds(), 1e-3) if started is not None else None
    out["elapsed_seconds"] = round(elapsed, 3) if elapsed is not None else None
    out["files_per_second"] = round(row.files_seen / elapsed, 1) if elapsed else None
    out["bytes_per_second"] = round(row.bytes_read / elapsed) if elapsed else None
    return out


def list_scans(
    conn: Connection, source_id: int | None = None, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The newest scans first."""
    query = select(scans.c.id).order_by(scans.c.id.desc()).limit(limit)
    if source_id is not None:
        query = query.where(scans.c.source_id == source_id)
    if status is not None:
        query = query.where(scans.c.status == status)
    return [s for scan_id in conn.execute(query).scalars() if (s := scan_summary(conn, scan_id)) is not None]
