"""Running scans and reading their results."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from mediamesh.backends.base import InvalidPathError, clean_relpath
from mediamesh.catalog import scans as catalog_scans
from mediamesh.catalog.scans import scan_summary
from mediamesh.catalog.times import now_utc
from mediamesh.context import Context
from mediamesh.errors import InvalidInput, NotFound
from mediamesh.metadata.stage import extract
from mediamesh.projects.assign import assign
from mediamesh.scanning.pipeline import ProgressFn, Scanner, ScanOptions, SourceRef
from mediamesh.scanning.safety import MissingPolicy
from mediamesh.services.sources import backend_for, check_source, find_source, path_filter_for, record_health

log = logging.getLogger(__name__)


def run_scan(
    ctx: Context,
    id_or_name: str,
    path: str = "",
    confirm_missing: bool = False,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    on_started: Callable[[int], None] | None = None,
    trigger: str = "cli",
) -> dict[str, Any]:
    """Scan a source (or one folder of it) now, in this thread; returns the scan summary."""
    try:
        top = clean_relpath(path)
    except InvalidPathError as exc:
        raise InvalidInput(f"invalid --path {path!r}: {exc}") from exc
    with ctx.catalog.read() as conn:
        row = find_source(conn, id_or_name)
    if not row.enabled:
        raise InvalidInput(f"source {row.name!r} is unmounted; 'mediamesh source mount {row.name}' first")
    if not row.identity:
        # Registered with --force while unreachable: record what it is now, before anything is compared.
        check_source(ctx, str(row.id))
        with ctx.catalog.read() as conn:
            row = find_source(conn, row.id)
    s = ctx.settings
    options = ScanOptions(
        path=top,
        confirm_missing=confirm_missing,
        settle_seconds=s.settle_seconds,
        workers=s.hash_workers,
        batch=s.commit_batch,
        missing_policy=MissingPolicy(s.missing_threshold_ratio, s.missing_threshold_min),
        trigger=trigger,
    )
    source = SourceRef(row.id, row.name, dict(row.identity or {}), path_filter_for(row))
    backend = backend_for(ctx, row)
    scanner = Scanner(ctx.catalog, backend, source, options, progress, cancel, on_started)
    try:
        scan_id = scanner.run()
        projects = _assign_projects(ctx, row.id)
        metadata = None
        if scanner.unreachable is None:
            metadata = _extract_metadata(ctx, backend, row.id, cancel)
    finally:
        backend.close()
        if scanner.unreachable is not None:  # known now; the next health probe would only say it later
            record_health(
                ctx,
                row.id,
                {
                    "health_status": "offline",
                    "health_checked_at": now_utc(),
                    "health_error": scanner.unreachable,
                },
            )
    summary = get_scan(ctx, scan_id)
    summary["projects"] = projects
    summary["metadata"] = metadata
    return summary


def _extract_metadata(
    ctx: Context, backend: Any, source_id: int, cancel: threading.Event | None
) -> dict[str, Any] | None:
    """The extract stage, after every scan: media of this source never probed are probed once (and
    pictured when MEDIAMESH_THUMBNAILS is eager). Failures are logged; they never fail the scan."""
    root = ctx.settings.thumbnail_dir if ctx.settings.thumbnails == "eager" else None
    try:
        return extract(ctx.catalog, backend, source_id, root, cancel).public()
    except Exception:
        log.exception("extracting metadata after scanning source %s failed", source_id)
        return None


def _assign_projects(ctx: Context, source_id: int) -> dict[str, Any] | None:
    """The assign stage, after every scan: rules and templates over the locations that scans added,
    changed or moved since it last ran for this source (the catalog only; a crash in between is caught up). A failure here is logged; it never fails the scan, whose records are already committed."""
    try:
        return assign(ctx.catalog, source_ids=[source_id], changed_only=True).public()
    except Exception:
        log.exception("assigning projects after scanning source %s failed", source_id)
        return None


def get_scan(ctx: Context, scan_id: int) -> dict[str, Any]:
    with ctx.catalog.read() as conn:
        summary = scan_summary(conn, scan_id)
    if summary is None:
        raise NotFound(f"no scan {scan_id}")
    return summary


def list_scans(
    ctx: Context, source: str | None = None, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    with ctx.catalog.read() as conn:
        source_id = find_source(conn, source).id if source is not None else None
        return catalog_scans.list_scans(conn, source_id, status, limit)
