"""``mediamesh webhook add|list|show|update|remove|deliveries|test`` and ``mediamesh events``: work on the
catalog directly, with or without the server running (the server delivers; ``test`` sends a ping now)."""

from __future__ import annotations

import json
import time
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from mediamesh.cli.output import JsonOption, context, emit, out
from mediamesh.services import events as event_svc
from mediamesh.services import webhooks as svc

app = typer.Typer(
    rich_markup_mode=None,
    help="Webhooks: events sent as signed POSTs to URLs in MEDIAMESH_WEBHOOK_ALLOW.",
    no_args_is_help=True,
)
EventsOption = typer.Option(
    [], "--event", help="Only these event types or prefixes (media.added, scan.*); repeat. Default: all."
)


def _render(w: dict[str, Any]) -> None:
    state = "on" if w["enabled"] else "off"
    out.print(f"[bold]{escape(w['name'])}[/] (id {w['id']}, {state}) {escape(w['url'])}")
    out.print(f"  events: {', '.join(w['events']) or 'all'}", markup=False)
    last = w.get("last_delivery")
    if last:
        status = last["http_status"] or "-"
        out.print(
            f"  last delivery: {last['outcome']} ({last['event_type']}, HTTP {status}) at {last['at']}",
            markup=False,
        )
        if last["error"]:
            out.print(f"    {last['error']}", markup=False)


@app.command("add")
def add(
    name: str = typer.Argument(..., help="A name: letters, digits, '-', '_', '.'."),
    url: str = typer.Argument(..., help="http(s)://host[:port]/path, in MEDIAMESH_WEBHOOK_ALLOW."),
    events: list[str] = EventsOption,
    as_json: bool = JsonOption,
) -> None:
    """Register a webhook. Its signing secret is shown once, as the last line."""
    with context() as ctx:
        data = svc.create_webhook(ctx, name, url, events)

    def render(w: dict[str, Any]) -> None:
        out.print(f"added webhook [bold]{escape(w['name'])}[/]; its signing secret, not shown again:")
        _render(w)
        print(w["secret"])

    emit(data, as_json, render)


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """Every webhook with its last delivery (never its secret)."""
    with context() as ctx:
        data = svc.list_webhooks(ctx)

    def render(rows: list[dict[str, Any]]) -> None:
        if not rows:
            out.print("no webhooks; 'mediamesh webhook add NAME URL' registers one")
        for w in rows:
            _render(w)

    emit(data, as_json, render)


@app.command("show")
def show(name: str, as_json: bool = JsonOption) -> None:
    with context() as ctx:
        data = svc.show_webhook(ctx, name)
    emit(data, as_json, _render)


@app.command("update")
def update(
    name: str,
    url: str | None = typer.Option(None, "--url", help="A new URL."),
    events: list[str] = EventsOption,
    all_events: bool = typer.Option(False, "--all-events", help="Send every event again."),
    enable: bool | None = typer.Option(None, "--enable/--disable", help="Switch it on or off."),
    as_json: bool = JsonOption,
) -> None:
    """Change a webhook's URL or events, or switch it on or off (on again: from the newest event)."""
    with context() as ctx:
        data = svc.update_webhook(
            ctx, name, url=url, events=[] if all_events else (events or None), enabled=enable
        )
    emit(data, as_json, _render)


@app.command("remove")
def remove(name: str, as_json: bool = JsonOption) -> None:
    with context() as ctx:
        data = svc.remove_webhook(ctx, name)
    emit(data, as_json, lambda d: out.print(f"removed webhook {escape(d['name'])}"))


@app.command("deliveries")
def deliveries(
    name: str,
    limit: int = typer.Option(20, "--limit", min=1, max=500),
    as_json: bool = JsonOption,
) -> None:
    """The delivery log, newest first."""
    with context() as ctx:
        data = svc.deliveries(ctx, name, limit)

    def render(rows: list[dict[str, Any]]) -> None:
        table = Table("at", "event", "attempt", "outcome", "HTTP", "ms", "error")
        for d in rows:
            table.add_row(
                d["at"] or "-",
                f"{d['event_type']} #{d['event_id']}" if d["event_id"] else d["event_type"],
                str(d["attempt"]),
                d["outcome"],
                str(d["http_status"] or "-"),
                f"{d['duration_ms']:.0f}" if d["duration_ms"] is not None else "-",
                escape(d["error"] or ""),
            )
        out.print(table)

    emit(data, as_json, render)


@app.command("test")
def test(name: str, as_json: bool = JsonOption) -> None:
    """Send a ping event now and say how it went."""
    with context() as ctx:
        data = svc.ping_webhook(ctx, name)

    def render(d: dict[str, Any]) -> None:
        if d["delivered"]:
            out.print(f"delivered (HTTP {d['http_status']})")
        else:
            out.print(f"not delivered: {d['error']}", markup=False)

    emit(data, as_json, render)
    if not data["delivered"]:
        raise typer.Exit(1)


def events(
    types: str | None = typer.Option(
        None, "--types", help="Types or prefixes, comma-separated: media.*,scan.*"
    ),
    limit: int = typer.Option(20, "--limit", min=1, max=1000, help="How many of the newest to show first."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing events as they come (Ctrl-C ends)."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON document per line (JSON Lines)."),
) -> None:
    """What changed in the catalog, newest last: media, sources, scans, projects."""

    def show(event: dict[str, Any]) -> None:
        if as_json:
            print(json.dumps(event, ensure_ascii=False), flush=True)
            return
        data = event["data"]
        what = data.get("source") or data.get("project") or ""
        extra = ""
        if "items" in data:
            first = data["items"][0]
            more = f" and {len(data['items']) - 1} more" if len(data["items"]) > 1 else ""
            extra = f" {first.get('path')}{more}"
        elif event["type"] == "scan.finished":
            extra = f" {data.get('status')}, {data.get('files_new', 0)} new, {data.get('files_missing', 0)} missing"
        out.print(f"{event['at']}  #{event['id']:<6} {event['type']:<16} {what}{extra}", markup=False)

    with context() as ctx:
        shown = event_svc.recent(ctx, 0, limit, types)
        for event in shown:
            show(event)
        if not follow:
            return
        cursor = event_svc.newest_id(ctx)
        try:
            while True:
                time.sleep(0.5)
                page, cursor = event_svc.page_after(ctx, cursor, types)
                for event in page:
                    show(event)
        except KeyboardInterrupt:
            return
