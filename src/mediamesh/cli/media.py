"""``mediamesh media list|show`` and ``mediamesh whereis``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from mediamesh.cli.output import JsonOption, context, emit, human_size, out
from mediamesh.services import media as svc

app = typer.Typer(
    rich_markup_mode=None, help="What media you have and where each copy is.", no_args_is_help=True
)

STATE_STYLE = {"present": "green", "offline": "yellow", "missing": "red"}


def _render_detail(m: dict[str, Any]) -> None:
    out.print(
        f"[bold]{m['id']}[/]  {m['kind']}, {human_size(m['size'])}, {m['copies']} present {'copy' if m['copies'] == 1 else 'copies'}"
    )
    facts = [m.get("mime")]
    if m.get("width"):
        facts.append(f"{m['width']}x{m['height']}")
    if m.get("duration") is not None:
        facts.append(f"{m['duration']:.2f} s")
    facts += [m.get("codec"), m.get("camera"), m.get("taken_at") and f"taken {m['taken_at']}"]
    shown = ", ".join(str(f) for f in facts if f)
    if shown:
        out.print(f"  {shown}", markup=False)
    if m.get("metadata_error"):
        out.print(f"  metadata error: {m['metadata_error']}", markup=False)
    for old in m.get("history") or []:
        out.print(
            f"  [dim]replaced[/] {escape(old['source'])}:{escape(old['path'])} on {old['replaced_at']}, "
            f"now {old['by_media_id']}"
        )
    for loc in m["locations"]:
        state = loc["state"]
        out.print(f"  [{STATE_STYLE.get(state, '')}]{state:8}[/] {loc['source']}:", end="")
        out.print(loc["path"], markup=False)


@app.command("list")
def list_(
    source: str | None = typer.Option(None, "--source", help="Only media with a location on this source."),
    project: str | None = typer.Option(None, "--project", help="Only media in this project."),
    state: str | None = typer.Option(
        None, "--state", help="present, offline, missing, or replaced (its file was edited in place)."
    ),
    kind: str | None = typer.Option(None, "--kind", help="video, image, audio or other."),
    duplicates: bool = typer.Option(
        False, "--duplicates", help="Only media with more than one present copy."
    ),
    single_copy: bool = typer.Option(
        False, "--single-copy", help="Only media with exactly one present copy (what one disk would lose)."
    ),
    search: str | None = typer.Option(
        None, "--search", "-q", help="Words in a location's path; word* for words beginning so."
    ),
    min_width: int | None = typer.Option(None, "--min-width", help="e.g. 3840 for 4K and wider."),
    min_duration: float | None = typer.Option(None, "--min-duration", help="Seconds."),
    max_duration: float | None = typer.Option(None, "--max-duration", help="Seconds."),
    codec: str | None = typer.Option(None, "--codec", help="h264, hevc, prores, flac, ..."),
    camera: str | None = typer.Option(None, "--camera", help="A part of the camera's make and model."),
    taken_after: datetime | None = typer.Option(None, "--taken-after", help="Capture time, e.g. 2024-06-01."),
    taken_before: datetime | None = typer.Option(None, "--taken-before", help="Capture time."),
    limit: int = typer.Option(100, "--limit", help="At most this many (1-1000)."),
    cursor: str | None = typer.Option(None, "--cursor", help="Continue after this media id (from 'next')."),
    as_json: bool = JsonOption,
) -> None:
    """List media with their locations."""
    with context() as ctx:
        technical = svc.Technical(
            min_width, None, min_duration, max_duration, codec, camera, taken_after, taken_before
        )
        page = svc.list_media(
            ctx, source, state, duplicates, kind, limit, cursor, search, single_copy, project, technical
        )

    def render(p: dict[str, Any]) -> None:
        table = Table("media id", "kind", "size", "state", "copies", "first location")
        for m in p["data"]:
            first = m["locations"][0] if m["locations"] else None
            table.add_row(
                m["id"][:16],
                m["kind"],
                human_size(m["size"]),
                f"[{STATE_STYLE.get(m['state'], '')}]{m['state']}[/]",
                str(m["copies"]),
                escape(f"{first['source']}:{first['path']}") if first else "-",
            )
        out.print(table)
        more = f"; more with --cursor {p['next']}" if p["next"] else ""
        out.print(f"{len(p['data'])} of {p['count']} media{more}")

    emit(page, as_json, render)


@app.command("show")
def show(media_id: str, as_json: bool = JsonOption) -> None:
    """One media item and every location with its state."""
    with context() as ctx:
        data = svc.show_media(ctx, media_id)
    emit(data, as_json, _render_detail)


def whereis(
    what: str = typer.Argument(..., help="A media id, an absolute path, or SOURCE:relative/path."),
    as_json: bool = JsonOption,
) -> None:
    """Every copy of a media item, found by its id or by one of its paths."""
    with context() as ctx:
        data = svc.whereis(ctx, what)
    emit(data, as_json, _render_detail)


files_app = typer.Typer(
    rich_markup_mode=None, help="Locations: every copy of every file, with its state.", no_args_is_help=True
)


@files_app.command("list")
def list_files(
    source: str | None = typer.Option(None, "--source", help="Only this source's locations."),
    path_prefix: str | None = typer.Option(None, "--path", help="Only below this folder of the source."),
    state: str | None = typer.Option(
        None, "--state", help="present, missing (a scan did not find it) or offline (its source is down)."
    ),
    limit: int = typer.Option(100, "--limit", min=1, max=svc.MAX_LIMIT),
    cursor: int | None = typer.Option(None, "--cursor", help="The 'next' of the previous page."),
    as_json: bool = JsonOption,
) -> None:
    """Locations, one per line: a deleted copy is a missing location here even while its media has other
    copies (``media list --state missing`` lists media with no copy left)."""
    with context() as ctx:
        page = svc.list_files(ctx, source, path_prefix, state, limit, cursor)

    def render(p: dict[str, Any]) -> None:
        table = Table("state", "source", "path", "size", "media")
        for f in p["data"]:
            style = STATE_STYLE.get(f["state"], "")
            table.add_row(
                f"[{style}]{f['state']}[/]",
                escape(f["source"]),
                escape(f["path"]),
                human_size(f["size"]),
                f["media_id"][:12],
            )
        out.print(table)
        more = f"; next page: --cursor {p['next']}" if p["next"] is not None else ""
        out.print(f"{len(p['data'])} of {p['count']} locations{more}", markup=False)

    emit(page, as_json, render)
