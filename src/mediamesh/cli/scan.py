"""``mediamesh scan NAME [--path SUB] [--confirm-missing] [--no-extract]``: two phases, each with its own
progress bar on a terminal. The index phase ends when the catalog holds every file; enrichment (metadata,
thumbnails) is a job of its own, left to a running server, or run here when none is, clearly labelled."""

from __future__ import annotations

import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from mediamesh.cli.output import JsonOption, context, emit, err, human_size, out
from mediamesh.context import Context
from mediamesh.scanning.model import ScanStats
from mediamesh.services import jobs as job_svc
from mediamesh.services import scans as scan_svc
from mediamesh.services import sources as source_svc
from mediamesh.services.jobs import JobRunner
from mediamesh.services.scans import run_scan


def render_summary(s: dict[str, Any]) -> None:
    style = {"completed": "green", "interrupted": "yellow", "failed": "red"}.get(s["status"], "")
    out.print(
        f"index: scan #{s['id']} of {s['source']}: [{style}]{s['status']}[/] in {s['index_seconds']:.1f} s - "
        f"{s['files_seen']} files seen, {s['files_new']} new, {s['files_changed']} changed, "
        f"{s['files_moved']} moved, {s['files_missing']} missing, {s['files_deferred']} deferred, "
        f"{human_size(s['bytes_hashed'])} hashed"
    )
    e = s.get("enrichment") or {}
    if e.get("where") == "here":
        m = s.get("metadata") or {}
        out.print(
            f"enrichment (in this process): job #{e['job']} {e['state']} in {e['seconds']:.1f} s - "
            f"{m.get('probed', 0)} probed, {m.get('errors', 0)} not recognised, {m.get('thumbnails', 0)} thumbnails"
        )
    elif e.get("where") == "server":
        out.print(f"enrichment: job #{e['job']} runs in the server ('mediamesh jobs show {e['job']}')")
    elif e.get("where") == "later":
        out.print(
            f"enrichment: job #{e['job']} queued ({e['pending']} media to probe); "
            "a running server does it, or the next 'mediamesh scan' without --no-extract"
        )
    if s["files_deferred"]:
        out.print(
            f"  {s['files_deferred']} still being written: left for now; scan again once they are complete",
            markup=False,
        )
    if s["error"]:
        out.print(f"  {s['error']}", markup=False)
    if s["errors_count"]:
        out.print(f"  {s['errors_count']} errors, the first:", markup=False)
        for e in s["errors"][:10]:
            out.print(f"    {e['path']}: {e['message']}", markup=False)


def scan(
    name: str = typer.Argument(..., help="Source name or id."),
    path: str = typer.Option("", "--path", help="Scan only this folder (relative to the source root)."),
    confirm_missing: bool = typer.Option(
        False, "--confirm-missing", help="Go ahead even if many known files would be marked missing at once."
    ),
    no_extract: bool = typer.Option(
        False,
        "--no-extract",
        help="Index only: leave metadata and thumbnails queued (for a running server, or the next scan).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Scan a source now: index new and changed media, recognise moves, mark what is gone as missing;
    then enrich what is new (metadata, thumbnails)."""
    with context() as ctx:
        summary = scan_in_phases(ctx, name, path, confirm_missing, no_extract, as_json)
    emit(summary, as_json, render_summary)
    if summary["status"] != "completed":
        raise typer.Exit(1)


def scan_in_phases(
    ctx: Context, name: str, path: str, confirm_missing: bool, no_extract: bool, as_json: bool
) -> dict[str, Any]:
    """The index, then enrichment, with a progress bar each on a terminal; Ctrl-C or SIGTERM stop at the
    next step (the scan is resumable)."""
    cancel = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        cancel.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    show_bar = sys.stderr.isatty() and not as_json
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[folder]}"),
        console=err,
        transient=True,
        disable=not show_bar,
    )
    task = progress.add_task(f"indexing {escape(name)}", total=None, counts="", folder="")

    def report(stats: ScanStats) -> None:
        done = stats.files_unchanged + stats.files_new + stats.files_changed + stats.files_moved
        counts = (
            f"{stats.files_seen} files ({done} done, {stats.files_new} new, {stats.files_moved} moved) "
            f"{human_size(stats.bytes_hashed)} hashed"
        )
        progress.update(task, counts=counts, folder=escape(stats.current_path[-60:]))

    try:
        with progress:
            started = time.monotonic()
            summary = run_scan(ctx, name, path, confirm_missing, report, cancel)
            summary["index_seconds"] = round(time.monotonic() - started, 3)
            progress.update(task, total=1, completed=1)
            summary["enrichment"] = _enrich(ctx, summary, progress, cancel, no_extract)
    except KeyboardInterrupt:
        err.print("interrupted; run the same scan again to resume")
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    return summary


def _enrich(
    ctx: Context, summary: dict[str, Any], progress: Progress, cancel: threading.Event, no_extract: bool
) -> dict[str, Any] | None:
    """The enrichment phase: queued as a job; a live server takes it, else it runs here (unless
    ``--no-extract``)."""
    if cancel.is_set() or summary["status"] != "completed":
        return None  # stopped, failed or unreachable: the next scan enriches
    source_id, _ = source_svc.source_ref(ctx, summary["source"])
    pending = scan_svc.pending_enrichment(ctx, source_id)
    if pending == 0:
        return None
    job_id = scan_svc.queue_enrichment(ctx, source_id, trigger="cli")
    if no_extract:
        return {"job": job_id, "where": "later", "state": "queued", "pending": pending}
    if job_svc.server_runs(ctx, "extract", source_id):
        return {"job": job_id, "where": "server", "state": "queued", "pending": pending}
    task = progress.add_task("enriching (in this process)", total=pending, counts="", folder="")

    def report(values: dict[str, Any]) -> None:
        counts = f"{values.get('done', 0)}/{values.get('total', pending)} media probed"
        progress.update(
            task, total=values.get("total", pending), completed=values.get("done", 0), counts=counts
        )

    started = time.monotonic()
    runner = JobRunner(ctx, scan_svc.HANDLERS, lanes=[])
    ended = runner.run_here(job_id, report, cancel)
    if ended is None:  # a server took it meanwhile
        return {"job": job_id, "where": "server", "state": "running", "pending": pending}
    summary["metadata"] = ended["result"]
    return {
        "job": job_id,
        "where": "here",
        "state": ended["state"],
        "pending": pending,
        "seconds": round(time.monotonic() - started, 3),
    }
