"""``mediamesh project ...`` and ``mediamesh import``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from mediamesh.cli.output import JsonOption, context, emit, human_size, out
from mediamesh.services import importer
from mediamesh.services import projects as svc

app = typer.Typer(
    rich_markup_mode=None,
    help="Projects: media put together by rules, templates and by hand.",
    no_args_is_help=True,
)
templates = typer.Typer(
    rich_markup_mode=None, help="Templates that make projects from folder names.", no_args_is_help=True
)
app.add_typer(templates, name="template")

PathOpt = typer.Option(None, "--path", help="Glob of locations, e.g. 'Projects/Wedding-2024/**'.")
SourceOpt = typer.Option([], "--source", help="Only locations on this source (repeat).")
KindOpt = typer.Option([], "--kind", help="video, image, audio or other (repeat).")
ExtOpt = typer.Option([], "--ext", help="File extension, e.g. mov (repeat).")
AfterOpt = typer.Option(None, "--modified-after", help="ISO date, e.g. 2024-06-01.")
BeforeOpt = typer.Option(None, "--modified-before", help="ISO date.")


def _rule(
    path: str | None,
    source: list[str],
    kind: list[str],
    ext: list[str],
    after: str | None,
    before: str | None,
) -> dict[str, Any] | None:
    raw = {
        "path": path,
        "sources": source,
        "kinds": kind,
        "extensions": ext,
        "modified_after": after,
        "modified_before": before,
    }
    rule = {k: v for k, v in raw.items() if v}
    return rule or None


def _render(p: dict[str, Any]) -> None:
    made = f", made by template {p['template']}" if p["template"] else f", {p['origin']}"
    out.print(f"[bold]{escape(p['name'])}[/] (id {p['id']}{escape(made)})")
    if p["description"] and not (p["template"] and p["description"].startswith("made by the template")):
        out.print(f"  {p['description']}", markup=False)  # (a template's own words are said above)
    for rule in p["rules"]:
        shown = "; ".join(
            f"{k} {', '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in rule.items()
            if k != "id"
        )
        out.print(f"  rule {rule['id']}: {shown}", markup=False)
    s = p["stats"]
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(s["kinds"].items())) or "none"
    out.print(f"  {s['media']} media ({kinds}), {human_size(s['size'])}")
    out.print(f"  on offline sources only: {s['offline_only']}; a single copy: {s['single_copy']}")


@app.command("add")
def add(
    name: str,
    description: str = typer.Option("", "--description", help="What the project is."),
    path: str | None = PathOpt,
    source: list[str] = SourceOpt,
    kind: list[str] = KindOpt,
    ext: list[str] = ExtOpt,
    modified_after: str | None = AfterOpt,
    modified_before: str | None = BeforeOpt,
    as_json: bool = JsonOption,
) -> None:
    """Make a project; with --path/--source/--kind/... it gets a rule and fills at once from the catalog."""
    rule = _rule(path, source, kind, ext, modified_after, modified_before)
    with context() as ctx:
        data = svc.create_project(ctx, name, description, [rule] if rule else [])
    emit(data, as_json, _render)


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """Every project with its size and counts."""
    with context() as ctx:
        data = svc.list_projects(ctx)

    def render(rows: list[dict[str, Any]]) -> None:
        if not rows:
            out.print("no projects yet: 'mediamesh project add NAME --path GLOB' or a template")
            return
        table = Table("id", "name", "origin", "media", "size", "offline only", "single copy")
        for p in rows:
            s = p["stats"]
            table.add_row(
                str(p["id"]),
                escape(p["name"]),
                p["origin"],
                str(s["media"]),
                human_size(s["size"]),
                str(s["offline_only"]),
                str(s["single_copy"]),
            )
        out.print(table)

    emit(data, as_json, render)


@app.command("show")
def show(name: str, as_json: bool = JsonOption) -> None:
    """One project: rules, counts per kind, size, what is at risk."""
    with context() as ctx:
        data = svc.show_project(ctx, name)
    emit(data, as_json, _render)


@app.command("update")
def update(
    name: str,
    new_name: str | None = typer.Option(None, "--name", help="Rename it."),
    description: str | None = typer.Option(None, "--description"),
    path: str | None = PathOpt,
    source: list[str] = SourceOpt,
    kind: list[str] = KindOpt,
    ext: list[str] = ExtOpt,
    modified_after: str | None = AfterOpt,
    modified_before: str | None = BeforeOpt,
    no_rules: bool = typer.Option(False, "--no-rules", help="Remove every rule (manual members stay)."),
    as_json: bool = JsonOption,
) -> None:
    """Rename or describe a project, or replace its rules (memberships follow at once, no rescan)."""
    rule = _rule(path, source, kind, ext, modified_after, modified_before)
    rules = [] if no_rules else ([rule] if rule else None)
    with context() as ctx:
        data = svc.update_project(ctx, name, new_name, description, rules)
    emit(data, as_json, _render)


@app.command("remove")
def remove(name: str, as_json: bool = JsonOption) -> None:
    """Forget a project (media and files are untouched)."""
    with context() as ctx:
        data = svc.remove_project(ctx, name)
    emit(data, as_json, lambda d: out.print(f"removed project {escape(d['name'])}"))


@app.command("preview")
def preview(
    path: str | None = PathOpt,
    source: list[str] = SourceOpt,
    kind: list[str] = KindOpt,
    ext: list[str] = ExtOpt,
    modified_after: str | None = AfterOpt,
    modified_before: str | None = BeforeOpt,
    as_json: bool = JsonOption,
) -> None:
    """How many locations and media a rule would match, before saving it."""
    with context() as ctx:
        data = svc.preview_rule(ctx, _rule(path, source, kind, ext, modified_after, modified_before) or {})

    def render(d: dict[str, Any]) -> None:
        out.print(f"{d['files']} locations, {d['media']} media")
        for example in d["examples"]:
            out.print(f"  {example}", markup=False)

    emit(data, as_json, render)


def _render_why(d: dict[str, Any]) -> None:
    if not d["projects"]:
        out.print("in no project")
    for p in d["projects"]:
        out.print(f"[bold]{escape(p['name'])}[/]")
        for r in p["reasons"]:
            if r["by"] == "hand":
                out.print("  added by hand")
            elif r["by"] == "rule":
                out.print(f"  rule {r['rule_id']} through {r['location']}", markup=False)
            else:
                out.print(f"  template {r['template']} through {r['location']}", markup=False)
    for p in d["excluded_from"]:
        out.print(f"taken out of {escape(p['name'])} by hand")


@app.command("add-media")
def add_media(name: str, media_id: str, as_json: bool = JsonOption) -> None:
    """Put a media item into a project by hand (it follows the content)."""
    with context() as ctx:
        data = svc.add_media(ctx, name, media_id)
    emit(data, as_json, _render_why)


@app.command("remove-media")
def remove_media(name: str, media_id: str, as_json: bool = JsonOption) -> None:
    """Take a media item out of a project by hand; this wins over every rule."""
    with context() as ctx:
        data = svc.remove_media(ctx, name, media_id)
    emit(data, as_json, _render_why)


@app.command("why")
def why(media_id: str, as_json: bool = JsonOption) -> None:
    """The projects a media item is in, and why."""
    with context() as ctx:
        data = svc.explain(ctx, media_id)
    emit(data, as_json, _render_why)


@app.command("apply")
def apply(as_json: bool = JsonOption) -> None:
    """Re-apply every rule and template to the whole catalog (idempotent; no source is read)."""
    with context() as ctx:
        data = svc.apply_rules(ctx)
    emit(data, as_json, lambda d: out.print(f"{d['added']} added, {d['removed']} removed"))


@templates.command("add")
def template_add(
    path: str = typer.Argument(..., help="A glob with one {project}, e.g. 'Projects/{project}/**'."),
    source: list[str] = SourceOpt,
    kind: list[str] = KindOpt,
    as_json: bool = JsonOption,
) -> None:
    """One project per folder name found, made and filled now and at every scan."""
    with context() as ctx:
        data = svc.add_template(ctx, path, source, kind)
    emit(
        data, as_json, lambda d: out.print(f"template {d['id']}: {len(d['projects_created'])} projects made")
    )


@templates.command("list")
def template_list(as_json: bool = JsonOption) -> None:
    with context() as ctx:
        data = svc.list_templates(ctx)

    def render(rows: list[dict[str, Any]]) -> None:
        table = Table("id", "path", "sources", "kinds", "projects")
        for t in rows:
            table.add_row(
                str(t["id"]), escape(t["path"]), ", ".join(t["sources"]) or "all", ", ".join(t["kinds"]) or "all",
                str(t["projects"]),
            )  # fmt: skip
        out.print(table)

    emit(data, as_json, render)


@templates.command("remove")
def template_remove(template_id: int, as_json: bool = JsonOption) -> None:
    """Stop a template; the projects it made stay."""
    with context() as ctx:
        data = svc.remove_template(ctx, template_id)
    emit(data, as_json, lambda d: out.print(f"removed template {d['id']}"))


def import_(
    listing: Path = typer.Argument(
        ..., help="A CSV (with a header) or JSON Lines file: path, project?, source?"
    ),
    fmt: str | None = typer.Option(None, "--format", help="csv or jsonl (default: from the extension)."),
    source: str | None = typer.Option(
        None, "--source", help="Source of records that name none (default: the first)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Import an older indexer's listing: match its paths to the catalog and make the projects it names."""
    with context() as ctx:
        data = importer.import_listing(ctx, listing, fmt, source)

    def render(d: dict[str, Any]) -> None:
        out.print(
            f"{d['records']} records: {d['matched']} matched, {d['unmatched']} not; "
            f"{len(d['projects_created'])} projects made, {d['memberships_added']} memberships added"
        )
        for u in d["unmatched_examples"]:
            out.print(f"  line {u['line']}: {u['path']}: {u['why']}", markup=False)

    emit(data, as_json, render)
