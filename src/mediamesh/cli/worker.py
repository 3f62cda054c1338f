"""``mediamesh worker``: a scan worker beside a NAS or on a laptop, sharing the PostgreSQL catalog;
``mediamesh workers``: who runs which source's jobs; ``mediamesh catalog copy``: SQLite to PostgreSQL."""

from __future__ import annotations

import signal
import socket
import threading
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from mediamesh.cli.output import JsonOption, context, emit, fail, out
from mediamesh.errors import InvalidInput
from mediamesh.services import jobs as job_svc
from mediamesh.services.catalog_copy import copy_catalog
from mediamesh.services.engine import EngineWorker, engine_runner, worker_queues
from mediamesh.services.sources import find_source, validate_worker_name

catalog_app = typer.Typer(
    rich_markup_mode=None, help="The catalog database itself: copy it elsewhere.", no_args_is_help=True
)


def worker(
    source: list[str] | None = typer.Option(
        None,
        "--source",
        help="Take the jobs of this source only (repeat). Default: every source, like a server.",
    ),
    concurrency: int = typer.Option(2, "--concurrency", min=1, max=32, help="Jobs run at once."),
    name: str | None = typer.Option(
        None,
        "--name",
        help="This worker's name (default: the host name); a source's --worker-path NAME=PATH says "
        "where this worker reads it.",
    ),
) -> None:
    """Run scans and enrichment next to the media, on the shared PostgreSQL catalog (docs/scale-out.md).
    The server leaves the sources a worker serves to it; Ctrl-C or SIGTERM gives running jobs back."""
    worker_name = name or socket.gethostname().split(".")[0]
    with context(worker_name=worker_name) as ctx:
        validate_worker_name(worker_name)
        if not ctx.settings.uses_task_engine:
            raise InvalidInput(
                "a worker needs the shared PostgreSQL catalog: set MEDIAMESH_DATABASE_URL="
                "postgresql+psycopg://... (the embedded SQLite catalog runs jobs in the server)"
            )
        ids: list[int] | None = None
        names: list[str] = []
        if source:
            with ctx.catalog.read() as conn:
                rows = [find_source(conn, s) for s in source]
            ids = sorted({r.id for r in rows})
            names = [r.name for r in rows]
        runner = engine_runner(ctx, worker_name, "worker", ids)
        queues = worker_queues(ids)
        engine = EngineWorker(ctx, runner, lambda: queues, concurrency, name=f"worker@{worker_name}")
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        runner.start()
        engine.start()
        served = ", ".join(names) if names else "every source"
        out.print(f"worker {escape(worker_name)}: serving {escape(served)}, {concurrency} job(s) at once")
        stop.wait()
        out.print("stopping: running jobs go back to the queue")
        engine.stop()
        runner.stop()


def workers(as_json: bool = JsonOption) -> None:
    """The job runners alive now (servers and workers), what they serve and run; per source, who runs its
    jobs."""
    with context() as ctx:
        data = job_svc.list_workers(ctx)
    emit(data, as_json, _render_workers)


def _render_workers(data: dict[str, Any]) -> None:
    out.print(f"task engine: {data['engine']}")
    if not data["workers"]:
        out.print("no job runner is alive (start `mediamesh serve` or `mediamesh worker`)", markup=False)
        return
    table = Table("name", "role", "host", "serves", "heartbeat", "running")
    for w in data["workers"]:
        running = ", ".join(
            f"{j['kind']} {j['id']}" + (f" ({j['source']})" if j.get("source") else "") for j in w["jobs"]
        )
        serves = "every source" if w["sources"] is None else ", ".join(w["sources"])
        table.add_row(
            escape(w["name"]),
            w["role"],
            escape(w["host"]),
            escape(serves),
            (w["heartbeat_at"] or "")[11:19],
            escape(running or "-"),
        )
    out.print(table)


@catalog_app.command("copy")
def copy(
    to: str = typer.Option(..., "--to", help="The new catalog: postgresql+psycopg://user:password@host/db."),
    as_json: bool = JsonOption,
) -> None:
    """Copy this catalog (MEDIAMESH_DATABASE_URL, or the data dir's SQLite) into another database and
    verify it row for row. Safe to run again: it goes on where a stopped copy ended, and writes nothing
    over a complete one. Stop the server first, so that nothing changes during the copy."""
    with context() as ctx:
        if as_json:
            data = copy_catalog(ctx.catalog, to)
        else:
            with Progress(
                TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(), console=out
            ) as bar:
                tasks: dict[str, Any] = {}

                def report(table: str, done: int, total: int) -> None:
                    if table not in tasks:
                        tasks[table] = bar.add_task(table, total=max(total, 1))
                    bar.update(tasks[table], completed=done if total else 1)

                data = copy_catalog(ctx.catalog, to, report)
    emit(data, as_json, _render_copy)


def _render_copy(data: dict[str, Any]) -> None:
    out.print(
        f"copied {data['copied']} of {data['rows']} rows to {escape(data['to'])}; "
        f"verified row for row: {'yes' if data['verified'] else 'NO'}"
    )
    if not data["verified"]:
        raise fail("the copy differs", 1)
