"""``mediamesh jobs list|show|cancel``: the durable queue of scans and enrichment (no server needed)."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from mediamesh.cli.output import JsonOption, context, emit, out
from mediamesh.services import jobs as svc

app = typer.Typer(
    rich_markup_mode=None,
    help="The work queue: scans and enrichment, their state and progress.",
    no_args_is_help=True,
)


def _progress(job: dict[str, Any]) -> str:
    p = job["progress"] or {}
    if "total" in p:
        return f"{p.get('done', 0)}/{p['total']}"
    if "files_seen" in p:
        return f"{p['files_seen']} files"
    return ""


@app.command("list")
def list_(
    state: str | None = typer.Option(
        None, "--state", help="queued, running, completed, failed or cancelled."
    ),
    source: str | None = typer.Option(None, "--source", help="Only this source's jobs."),
    limit: int = typer.Option(50, "--limit", min=1, max=500),
    as_json: bool = JsonOption,
) -> None:
    """Jobs, newest first."""
    with context() as ctx:
        data = svc.list_jobs(ctx, state, None, source, limit)

    def render(rows: list[dict[str, Any]]) -> None:
        table = Table("id", "kind", "source", "state", "attempts", "progress", "held by", "error")
        for j in rows:
            table.add_row(
                str(j["id"]),
                j["kind"],
                escape(j["source"] or "-"),
                j["state"],
                f"{j['attempts']}/{j['max_attempts']}",
                _progress(j),
                escape(j["lease_owner"] or ""),
                escape((j["error"] or "")[:60]),
            )
        out.print(table)

    emit(data, as_json, render)


@app.command("show")
def show(job_id: int, as_json: bool = JsonOption) -> None:
    """One job: payload, progress, result or error."""
    with context() as ctx:
        data = svc.get_job(ctx, job_id)
    emit(data, as_json, lambda d: out.print_json(data=d, default=str))


@app.command("cancel")
def cancel(job_id: int, as_json: bool = JsonOption) -> None:
    """Cancel a queued job now, a running one at its next step (wherever it runs)."""
    with context() as ctx:
        data = svc.cancel_job(ctx, job_id)
    emit(data, as_json, lambda d: out.print(f"job {d['id']} ({d['kind']}): cancellation asked, {d['state']}"))
