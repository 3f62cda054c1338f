"""Running scans and reading their results."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from mediamesh.backends.base import (
    Backend,
    BackendError,
    EntryKind,
    InvalidPathError,
    NotADirectoryError_,
    NotFoundError,
    UnreachableError,
    clean_relpath,
    parent_of,
)
from mediamesh.catalog import jobs as job_table
from mediamesh.catalog import scans as catalog_scans
from mediamesh.catalog.jobs import Job
from mediamesh.catalog.scans import scan_summary
from mediamesh.catalog.times import now_utc
from mediamesh.context import Context
from mediamesh.errors import InvalidInput, NotFound
from mediamesh.metadata.stage import extract, unprobed_count
from mediamesh.projects.assign import assign
from mediamesh.scanning.model import ScanStats
from mediamesh.scanning.pipeline import ProgressFn, Scanner, ScanOptions, SourceRef
from mediamesh.scanning.safety import MissingPolicy
from mediamesh.services.jobs import Handler, JobControl
from mediamesh.services.sources import (
    backend_for,
    check_source,
    find_source,
    path_filter_for,
    record_health,
    scan_identity,
)

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
    shallow: bool = False,
) -> dict[str, Any]:
    """Scan a source (or one folder of it) now, in this thread; returns the scan summary. ``shallow``:
    the folder's own files and its sub-folders new to the catalog only (see ScanOptions)."""
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
        shallow=shallow,
    )
    source = SourceRef(row.id, row.name, scan_identity(ctx, row), path_filter_for(row))
    backend = backend_for(ctx, row)  # shared with probes and content: never closed here
    if top:
        _check_folder(backend, row.name, top)
    scanner = Scanner(
        ctx.catalog,
        backend,
        source,
        options,
        progress,
        cancel,
        on_started,
        before_finish=lambda: _assign_projects(ctx, row.id),  # done when the scan says it is done
    )
    scan_id = scanner.run()
    if scanner.unreachable is not None:  # known now; the next health probe would only say it later
        ctx.connections.reset(row.id)
        record_health(
            ctx,
            row.id,
            {"health_status": "offline", "health_checked_at": now_utc(), "health_error": scanner.unreachable},
        )
    summary = get_scan(ctx, scan_id)
    if summary["status"] == "completed" and row.health_status in ("offline", "unknown"):
        # The scan reached the source from end to end (and checked it again at the end): it is online now,
        # not at the next probe (a source that came back showed offline after a successful scan).
        record_health(
            ctx, row.id, {"health_status": "online", "health_checked_at": now_utc(), "health_error": None}
        )
    summary["projects"] = scanner.before_finish_result
    summary["deferred_folders"] = sorted(scanner.stats.deferred_folders)
    summary["metadata"] = None  # enrichment is a job of its own (see queue_enrichment)
    return summary


def _check_folder(backend: Backend, source: str, top: str) -> None:
    """A --path that is not a folder of the source is bad input (exit 2), not a failed scan in the
    history. An unreachable source is left to the scan, which records it."""
    try:
        entry = backend.stat(top)
    except NotFoundError:
        raise InvalidInput(
            f"no folder {top!r} in source {source!r} (the path is relative to its root)"
        ) from None
    except UnreachableError:
        return
    except BackendError as exc:
        raise InvalidInput(f"cannot scan {top!r} in source {source!r}: {exc}") from None
    if entry.kind is not EntryKind.DIR:
        raise InvalidInput(f"{top!r} in source {source!r} is not a folder")


def _assign_projects(ctx: Context, source_id: int) -> dict[str, Any] | None:
    """The assign stage, after every scan: rules and templates over the locations that scans added,
    changed or moved since it last ran for this source (the catalog only: fast, so part of the index
    phase). A failure is logged; it never fails the scan, whose records are already committed."""
    try:
        return assign(ctx.catalog, source_ids=[source_id], changed_only=True).public()
    except Exception:
        log.exception("assigning projects after scanning source %s failed", source_id)
        return None


# -- enrichment ------------------------------------------------------------------------------------------
def queue_enrichment(ctx: Context, source_id: int, trigger: str = "scan") -> int:
    """Queue the extract job of a source (metadata, and thumbnails when eager): one waits per source."""
    return job_table.enqueue(
        ctx.catalog, "extract", key=f"extract:{source_id}", source_id=source_id, trigger=trigger, priority=-10
    )


def pending_enrichment(ctx: Context, source_id: int) -> int:
    """Media of a source that the extract stage has not probed yet."""
    with ctx.catalog.read() as conn:
        return unprobed_count(conn, source_id)


def run_enrichment(
    ctx: Context,
    source_id: int,
    progress: Callable[[dict[str, Any]], None] | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    """The extract stage of one source in this thread: probe (and picture, when eager) its never-probed
    media. Failures of single files are recorded with them; an unreachable source stops the stage."""
    with ctx.catalog.read() as conn:
        row = find_source(conn, source_id)
    root = ctx.settings.thumbnail_dir if ctx.settings.thumbnails == "eager" else None
    result = extract(ctx.catalog, backend_for(ctx, row), row.id, root, cancel, progress)
    if result.unreachable is not None:
        ctx.connections.reset(row.id)
    return result.public()


# -- job handlers (see services/jobs.py) -----------------------------------------------------------------
#: Follow-up scans for files still being written, each after twice the wait of the one before.
SETTLE_ROUNDS = 8


def scan_job(ctx: Context, job: Job, control: JobControl) -> dict[str, Any]:
    """Handler of ``scan`` jobs: the index phase of each target, then enrichment queued as a job of its
    own. The payload names whole trees (``paths``, or the older ``path``) and single folders that changed
    (``folders``: shallow scans, from a watch); see :func:`scan_targets`."""
    if job.source_id is None:
        raise InvalidInput("a scan job needs a source")

    def report(stats: ScanStats) -> None:
        control.progress(
            {"files_seen": stats.files_seen, "files_new": stats.files_new, "current_path": stats.current_path}
        )

    with ctx.catalog.read() as conn:
        row = find_source(conn, job.source_id)
    targets = scan_targets(job.payload)
    if any(shallow for _, shallow in targets):
        targets = _settled_targets(backend_for(ctx, row), targets)
    summaries: list[dict[str, Any]] = []
    deferred: dict[str, Any] = {"paths": [], "folders": []}
    for top, shallow in targets:
        if control.cancel.is_set():
            break
        summary = run_scan(
            ctx,
            str(job.source_id),
            top,
            bool(job.payload.get("confirm_missing", False)),
            progress=report,
            cancel=control.cancel,
            on_started=lambda scan_id: control.progress({"scan_id": scan_id}, force=True),
            trigger=job.trigger,
            shallow=shallow,
        )
        summaries.append(summary)
        if summary["status"] == "completed" and summary["files_deferred"]:
            # Exactly the folders of the files still being written, each shallowly: a shallow scan's
            # top would not look into a folder it found new this time (it is known now).
            deferred["folders"].extend(summary.get("deferred_folders") or [top])
        if summary["status"] != "completed":
            break  # unreachable or refused: the rest would say the same
    if any(s["status"] == "completed" or s["files_new"] or s["files_changed"] for s in summaries):
        queue_enrichment(ctx, job.source_id, trigger=job.trigger)  # whatever the index reached
    rounds = int(job.payload.get("settle_round", 0))
    if (deferred["paths"] or deferred["folders"]) and rounds < SETTLE_ROUNDS:
        # Files still being written: look again once they have settled, not at the next schedule; a file
        # written for hours (a recording) is looked at less and less often, then left to the schedule.
        job_table.enqueue(
            ctx.catalog,
            "scan",
            {**{k: v for k, v in deferred.items() if v}, "settle_round": rounds + 1},
            key=f"scan:{job.source_id}",
            source_id=job.source_id,
            trigger="settle",
            delay=timedelta(seconds=min(3600.0, (ctx.settings.settle_seconds + 1) * 2**rounds)),
            merge=merge_scan_payloads,
        )
    last = summaries[-1] if summaries else {"id": None, "status": "completed"}
    return {
        "scan_id": last["id"],
        "status": last["status"],
        "scans": [s["id"] for s in summaries],
        "projects": last.get("projects"),
    }


#: More changed folders than this in one job are scanned as the whole source (one walk, not hundreds).
MAX_FOLDERS = 64


def scan_targets(payload: dict[str, Any]) -> list[tuple[str, bool]]:
    """(folder, shallow) pairs a scan job runs, in order: whole trees first, then changed folders that
    no tree covers. Too many folders become one scan of the whole source."""
    paths = [str(p) for p in payload.get("paths", [])]
    if "path" in payload or not (paths or payload.get("folders")):
        paths.append(str(payload.get("path", "")))
    folders = sorted({str(f) for f in payload.get("folders", [])})
    if len(folders) > MAX_FOLDERS:
        paths, folders = [""], []
    if "" in paths:
        return [("", False)]
    trees = sorted(set(paths))
    trees = [p for p in trees if not any(_within(p, q) for q in trees if q != p)]

    def covered(folder: str) -> bool:
        return any(_within(folder, tree) for tree in trees)

    return [(p, False) for p in trees] + [(f, True) for f in folders if not covered(f)]


def _within(path: str, tree: str) -> bool:
    return not tree or path == tree or path.startswith(tree + "/")


def merge_scan_payloads(queued: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A scan already queued for a source takes in the targets of another (changes keep coming while a
    scan waits): its trees and folders are the union of both; a whole-source scan covers everything."""
    merged_paths = {str(p) for p in queued.get("paths", [])} | {str(p) for p in new.get("paths", [])}
    for payload in (queued, new):
        if "path" in payload or not (payload.get("paths") or payload.get("folders")):
            merged_paths.add(str(payload.get("path", "")))
    folders = {str(f) for f in queued.get("folders", [])} | {str(f) for f in new.get("folders", [])}
    out = {k: v for k, v in queued.items() if k not in ("path", "paths", "folders")}
    if "" in merged_paths or len(folders) > MAX_FOLDERS:
        return {**out, "path": ""}
    if merged_paths:
        out["paths"] = sorted(merged_paths)
    if folders:
        out["folders"] = sorted(folders)
    return out


def _settled_targets(backend: Backend, targets: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """Where each changed folder is scanned from: itself (shallow) while it is there with something in
    it; its parent when it is gone (shallow: the parent's listing shows it gone); its parent, whole, when
    it is empty (an empty folder is never concluded from by itself: see scanning/safety.py)."""
    out: list[tuple[str, bool]] = []
    for target in targets:
        settled = _settle_folder(backend, target[0]) if target[1] else target
        if settled not in out:
            out.append(settled)
    return out


def _settle_folder(backend: Backend, folder: str) -> tuple[str, bool]:
    while folder:
        try:
            if backend.list_dir(folder):
                return folder, True
            return parent_of(folder), False
        except (NotFoundError, NotADirectoryError_):
            folder = parent_of(folder)
        except BackendError:  # unreachable, or unreadable: the scan says so and records it
            return folder, True
    return "", True


def extract_job(ctx: Context, job: Job, control: JobControl) -> dict[str, Any]:
    """Handler of ``extract`` jobs: enrichment of one source, with its progress kept with the job."""
    if job.source_id is None:
        raise InvalidInput("an extract job needs a source")
    return run_enrichment(ctx, job.source_id, control.progress, control.cancel)


HANDLERS: dict[str, Handler] = {"scan": scan_job, "extract": extract_job}


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
