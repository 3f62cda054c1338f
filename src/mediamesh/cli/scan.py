"""``mediamesh scan NAME [--path SUB] [--confirm-missing]`` with a progress bar on a terminal."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from mediamesh.cli.output import JsonOption, context, emit, err, human_size, out
from mediamesh.scanning.model import ScanStats
from mediamesh.services.scans import run_scan


def _render(s: dict[str, Any]) -> None:
    style = {"completed": "green", "interrupted": "yellow", "failed": "red"}.get(s["status"], "")
    out.print(
        f"scan #{s['id']} of {s['source']}: [{style}]{s['status']}[/] - {s['files_seen']} files seen, "
        f"{s['files_new']} new, {s['files_changed']} changed, {s['files_moved']} moved, "
        f"{s['files_missing']} missing, {s['files_deferred']} deferred, {human_size(s['bytes_hashed'])} hashed"
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
    as_json: bool = JsonOption,
) -> None:
    """Scan a source now: index new and changed media, recognise moves, mark what is gone as missing."""
    cancel = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        cancel.set()  # stop cleanly at the next step; the scan is resumable

    previous = signal.signal(signal.SIGTERM, on_signal)
    show_bar = sys.stderr.isatty() and not as_json
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[folder]}"),
        console=err,
        transient=True,
        disable=not show_bar,
    )
    task = progress.add_task(f"scanning {name}", total=None, counts="", folder="")

    def report(stats: ScanStats) -> None:
        done = stats.files_unchanged + stats.files_new + stats.files_changed + stats.files_moved
        counts = (
            f"{stats.files_seen} files ({done} done, {stats.files_new} new, {stats.files_moved} moved) "
            f"{human_size(stats.bytes_hashed)} hashed"
        )
        progress.update(task, counts=counts, folder=escape(stats.current_path[-60:]))

    try:
        with context() as ctx, progress:
            try:
                summary = run_scan(ctx, name, path, confirm_missing, report, cancel)
            except KeyboardInterrupt:
                err.print("interrupted; run the same scan again to resume")
                raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    emit(summary, as_json, _render)
    if summary["status"] != "completed":
        raise typer.Exit(1)
