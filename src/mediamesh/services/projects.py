"""Projects: create, change, remove; membership by rules, templates and by hand; why a media item is in a
project; what a project holds. The CLI and the API both call these."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, delete, exists, func, insert, select, update

from mediamesh.catalog import events as event_log
from mediamesh.catalog.queries import SOURCE_UNREACHABLE, find_project, resolve_media_id
from mediamesh.catalog.schema import (
    files,
    media,
    project_exclusions,
    project_members,
    project_rules,
    project_templates,
    projects,
    sources,
)
from mediamesh.catalog.times import iso, now_utc
from mediamesh.context import Context
from mediamesh.errors import Conflict, InvalidInput, NotFound
from mediamesh.projects.assign import assign, forget_reasons
from mediamesh.projects.membership import insert_project
from mediamesh.projects.rules import (
    CompiledRule,
    CompiledTemplate,
    Location,
    compile_template,
    normalise_rule,
)
from mediamesh.services.sources import find_source

_BAD_NAME = re.compile(r"[\x00-\x1f/\\]")


def validate_project_name(name: str) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > 200 or _BAD_NAME.search(name):
        raise InvalidInput("a project name is 1-200 characters, without '/', '\\' or control characters")
    return name


def _source_lookup(conn: Connection) -> Any:
    return lambda value: find_source(conn, value).id


# -- projects ----------------------------------------------------------------------------------------------
def create_project(
    ctx: Context, name: str, description: str = "", rules: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    name = validate_project_name(name)
    with ctx.catalog.write() as conn:
        if conn.execute(select(projects.c.id).where(projects.c.name == name)).first() is not None:
            raise Conflict(f"a project named {name!r} already exists")
        specs = [normalise_rule(r, _source_lookup(conn)) for r in rules or []]
        project_id = insert_project(conn, name, description or "", "manual")
        rule_ids = _insert_rules(conn, project_id, specs)
    assign(ctx.catalog, rule_ids=rule_ids)
    return show_project(ctx, name)


def _insert_rules(conn: Connection, project_id: int, specs: list[dict[str, Any]]) -> list[int]:
    ids = []
    for spec in specs:
        key = conn.execute(
            insert(project_rules).values(project_id=project_id, spec=spec, created_at=now_utc())
        ).inserted_primary_key
        assert key is not None
        ids.append(int(key[0]))
    return ids


def update_project(
    ctx: Context,
    id_or_name: str,
    name: str | None = None,
    description: str | None = None,
    rules: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Rename, describe, or replace the rules (memberships are recomputed from the catalog, no rescan)."""
    with ctx.catalog.write() as conn:
        row = find_project(conn, id_or_name)
        values: dict[str, Any] = {"updated_at": now_utc()}
        if name is not None:
            values["name"] = validate_project_name(name)
            clash = conn.execute(
                select(projects.c.id).where(projects.c.name == values["name"], projects.c.id != row.id)
            ).first()
            if clash is not None:
                raise Conflict(f"a project named {values['name']!r} already exists")
        if description is not None:
            values["description"] = description
        new_rules: list[int] = []
        if rules is not None:
            specs = [normalise_rule(r, _source_lookup(conn)) for r in rules]
            old = list(
                conn.execute(select(project_rules.c.id).where(project_rules.c.project_id == row.id)).scalars()
            )
            forget_reasons(conn, old, [])
            conn.execute(delete(project_rules).where(project_rules.c.project_id == row.id))
            new_rules = _insert_rules(conn, row.id, specs)
        conn.execute(update(projects).where(projects.c.id == row.id).values(**values))
        event_log.append(
            conn,
            "project.changed",
            {
                "project": values.get("name", row.name),
                "renamed_from": row.name if name is not None else None,
                "rules_replaced": rules is not None,
            },
            project_id=row.id,
        )
    if new_rules:
        assign(ctx.catalog, rule_ids=new_rules)
    return show_project(ctx, str(row.id) if name is None else values["name"])


def remove_project(ctx: Context, id_or_name: str) -> dict[str, Any]:
    """Forget a project and its memberships; media and files are untouched. A template makes it again
    at the next scan if its folder is still there."""
    with ctx.catalog.write() as conn:
        row = find_project(conn, id_or_name)
        conn.execute(delete(project_members).where(project_members.c.project_id == row.id))
        conn.execute(delete(project_exclusions).where(project_exclusions.c.project_id == row.id))
        conn.execute(delete(project_rules).where(project_rules.c.project_id == row.id))
        conn.execute(delete(projects).where(projects.c.id == row.id))
        event_log.append(conn, "project.removed", {"project": row.name}, project_id=row.id)
    return {"id": row.id, "name": row.name, "removed": True}


def _rules_of(conn: Connection, project_id: int) -> list[dict[str, Any]]:
    names = {r.id: r.name for r in conn.execute(select(sources.c.id, sources.c.name))}
    out = []
    for r in conn.execute(select(project_rules).where(project_rules.c.project_id == project_id)):
        spec = dict(r.spec)
        if "sources" in spec:
            spec["sources"] = [names.get(s, str(s)) for s in spec["sources"]]
        out.append({"id": r.id, **spec})
    return out


def _stats(conn: Connection, project_ids: list[int] | None = None) -> dict[int, dict[str, Any]]:
    """Counts and size of projects' media (of these projects, or all): per kind, on offline sources only,
    with a single copy. One query for all of them, driven by the memberships, not by the whole catalog."""
    pm, pe = project_members, project_exclusions
    taken_out = exists(
        select(pe.c.media_id).where(pe.c.project_id == pm.c.project_id, pe.c.media_id == pm.c.media_id)
    )
    members_q = select(pm.c.project_id, pm.c.media_id).where(~taken_out).distinct()
    if project_ids is not None:
        members_q = members_q.where(pm.c.project_id.in_(project_ids))
    members = members_q.subquery()
    present = files.c.state == "present"
    copies_q = (
        select(
            files.c.media_id,
            func.sum(case((present, 1), else_=0)).label("present"),
            func.sum(case((and_(present, ~SOURCE_UNREACHABLE), 1), else_=0)).label("reachable"),
        )
        .join(sources, sources.c.id == files.c.source_id)
        .group_by(files.c.media_id)
    )
    if project_ids is not None:
        copies_q = copies_q.where(files.c.media_id.in_(select(members.c.media_id)))
    copies = copies_q.subquery()
    rows = conn.execute(
        select(
            members.c.project_id,
            media.c.kind,
            func.count(),
            func.coalesce(func.sum(media.c.size), 0),
            func.sum(case((and_(copies.c.present > 0, copies.c.reachable == 0), 1), else_=0)),
            func.sum(case((copies.c.present == 1, 1), else_=0)),
        )
        .select_from(members.join(media, media.c.id == members.c.media_id))
        .outerjoin(copies, copies.c.media_id == media.c.id)
        .group_by(members.c.project_id, media.c.kind)
    )
    out: dict[int, dict[str, Any]] = {}
    for project_id, kind, count, size, offline, single in rows:
        entry = out.setdefault(int(project_id), _empty_stats())
        entry["kinds"][kind] = int(count)
        entry["media"] += int(count)
        entry["size"] += int(size)
        entry["offline_only"] += int(offline or 0)
        entry["single_copy"] += int(single or 0)
    return out


def _empty_stats() -> dict[str, Any]:
    return {"media": 0, "size": 0, "kinds": {}, "offline_only": 0, "single_copy": 0}


def _public(conn: Connection, row: Any, stats: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    template = None
    if row.template_id is not None:
        template = conn.execute(
            select(project_templates.c.path).where(project_templates.c.id == row.template_id)
        ).scalar_one_or_none()
    out = {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "origin": row.origin,
        "template": template,
        "rules": _rules_of(conn, row.id),
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }
    if stats is not None:
        out["stats"] = stats.get(row.id) or _empty_stats()
    return out


def list_projects(ctx: Context, recent_stats: bool = False) -> list[dict[str, Any]]:
    """Every project with its stats. ``recent_stats``: figures up to a few seconds old are good enough
    (they cost a pass over every membership: 0.6 s for 180 projects over 100k media); a project they do
    not know yet is counted on its own."""
    with ctx.catalog.read() as conn:
        rows = conn.execute(select(projects).order_by(projects.c.name)).all()
        if recent_stats:
            # The web UI's projects page answers from these while a recount runs (the API counts each time).
            recent = ctx.caches.named("project-stats", 30.0)
            stats = dict(recent.get(ctx.catalog, ("project-stats",), ctx.catalog.generation, _stats, conn))
            unknown = [r.id for r in rows if r.id not in stats]
            if unknown:
                stats.update(_stats(conn, unknown))
        else:
            stats = _stats(conn)
        return [_public(conn, r, stats) for r in rows]


def project_names(ctx: Context) -> list[str]:
    """Every project's name, for choosing one (no stats: cheap)."""
    with ctx.catalog.read() as conn:
        return list(conn.execute(select(projects.c.name).order_by(projects.c.name)).scalars())


def show_project(ctx: Context, id_or_name: str) -> dict[str, Any]:
    with ctx.catalog.read() as conn:
        row = find_project(conn, id_or_name)
        return _public(conn, row, _stats(conn, [row.id]))


def project_id_of(ctx: Context, id_or_name: str) -> int:
    with ctx.catalog.read() as conn:
        return int(find_project(conn, id_or_name).id)


# -- manual membership -------------------------------------------------------------------------------------
def _media_id(conn: Connection, value: str) -> str:
    """A media id or a unique prefix of one, of media in the catalog."""
    return resolve_media_id(conn, value)


def add_media(ctx: Context, id_or_name: str, media_id: str) -> dict[str, Any]:
    """Put a media item into a project by hand; it follows the content (any copy, moved or renamed)."""
    with ctx.catalog.write() as conn:
        row = find_project(conn, id_or_name)
        media_id = _media_id(conn, media_id)
        if add_by_hand(conn, row.id, media_id, over_exclusion=True):
            event_log.append(
                conn,
                "project.changed",
                {"project": row.name, "added": [media_id], "by": "hand"},
                project_id=row.id,
            )
    return explain(ctx, media_id)


def add_by_hand(conn: Connection, project_id: int, media_id: str, over_exclusion: bool) -> bool:
    """A manual membership (if there is none yet). ``over_exclusion``: a person adding it again lifts
    their earlier removal; an import does not. Returns whether a membership was added."""
    excluded = (project_exclusions.c.project_id == project_id) & (project_exclusions.c.media_id == media_id)
    if over_exclusion:
        conn.execute(delete(project_exclusions).where(excluded))
    elif conn.execute(select(project_exclusions.c.media_id).where(excluded)).first() is not None:
        return False
    manual = select(project_members.c.id).where(
        project_members.c.project_id == project_id,
        project_members.c.media_id == media_id,
        project_members.c.rule_id.is_(None),
        project_members.c.template_id.is_(None),
    )
    if conn.execute(manual).first() is not None:
        return False
    conn.execute(
        insert(project_members).values(project_id=project_id, media_id=media_id, created_at=now_utc())
    )
    return True


def remove_media(ctx: Context, id_or_name: str, media_id: str) -> dict[str, Any]:
    """Take a media item out of a project by hand. This wins over every rule: an exclusion, kept until the
    media is added again."""
    with ctx.catalog.write() as conn:
        row = find_project(conn, id_or_name)
        media_id = _media_id(conn, media_id)
        conn.execute(
            delete(project_members).where(
                project_members.c.project_id == row.id,
                project_members.c.media_id == media_id,
                project_members.c.rule_id.is_(None),
                project_members.c.template_id.is_(None),
            )
        )
        excluded = select(project_exclusions.c.media_id).where(
            project_exclusions.c.project_id == row.id, project_exclusions.c.media_id == media_id
        )
        if conn.execute(excluded).first() is None:
            conn.execute(
                insert(project_exclusions).values(project_id=row.id, media_id=media_id, created_at=now_utc())
            )
        event_log.append(
            conn,
            "project.changed",
            {"project": row.name, "removed": [media_id], "by": "hand"},
            project_id=row.id,
        )
    return explain(ctx, media_id)


def explain(ctx: Context, media_id: str) -> dict[str, Any]:
    """The projects a media item is in, and why: which rule or template through which location, or by hand;
    and the projects it was taken out of by hand."""
    with ctx.catalog.read() as conn:
        media_id = _media_id(conn, media_id)
        rows = conn.execute(
            select(
                projects.c.id,
                projects.c.name,
                project_members.c.rule_id,
                project_members.c.template_id,
                project_templates.c.path.label("template"),
                project_rules.c.spec,
                sources.c.name.label("source"),
                files.c.path,
            )
            .select_from(project_members)
            .join(projects, projects.c.id == project_members.c.project_id)
            .outerjoin(project_rules, project_rules.c.id == project_members.c.rule_id)
            .outerjoin(project_templates, project_templates.c.id == project_members.c.template_id)
            .outerjoin(files, files.c.id == project_members.c.file_id)
            .outerjoin(sources, sources.c.id == files.c.source_id)
            .where(project_members.c.media_id == media_id)
            .order_by(projects.c.name, project_members.c.id)
        ).all()
        excluded = {
            r.name: r.id
            for r in conn.execute(
                select(projects.c.id, projects.c.name)
                .join(project_exclusions, project_exclusions.c.project_id == projects.c.id)
                .where(project_exclusions.c.media_id == media_id)
            )
        }
    found: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.name in excluded:
            continue
        entry = found.setdefault(r.name, {"id": r.id, "name": r.name, "reasons": []})
        if r.rule_id is not None:
            reason = {"by": "rule", "rule_id": r.rule_id, "rule": r.spec, "location": f"{r.source}:{r.path}"}
        elif r.template_id is not None:
            reason = {"by": "template", "template_id": r.template_id, "template": r.template}
            reason["location"] = f"{r.source}:{r.path}"
        else:
            reason = {"by": "hand"}
        entry["reasons"].append(reason)
    return {
        "media_id": media_id,
        "projects": list(found.values()),
        "excluded_from": [{"id": i, "name": n} for n, i in sorted(excluded.items())],
    }


def _catalog_locations(
    conn: Connection, source_ids: Collection[int] | None, where: ColumnElement[bool] | None = None
) -> Iterator[tuple[Location, str]]:
    """Every location of the catalog (on these sources, if any are given; that ``where`` lets through)
    as a rule sees it."""
    query = select(
        files.c.source_id, files.c.path, files.c.size, files.c.mtime_ns, files.c.media_id, media.c.kind
    ).join(media, media.c.id == files.c.media_id)
    if source_ids:
        query = query.where(files.c.source_id.in_(source_ids))
    if where is not None:
        query = query.where(where)
    for r in conn.execute(query.execution_options(yield_per=5000)):
        yield Location(r.source_id, r.path, r.kind, r.size, r.mtime_ns), r.media_id


# -- rules: preview -----------------------------------------------------------------------------------------
def preview_rule(ctx: Context, raw: dict[str, Any]) -> dict[str, Any]:
    """How many locations and media a rule would match, before it is saved (reads the catalog only)."""
    with ctx.catalog.read() as conn:
        rule = CompiledRule(normalise_rule(raw, _source_lookup(conn)))
        matched_files, matched_media, examples = 0, set[str](), list[str]()
        for loc, media_id in _catalog_locations(conn, rule.sources, rule.clause()):
            if rule.matches(loc):
                matched_files += 1
                matched_media.add(media_id)
                if len(examples) < 5:
                    examples.append(loc.path)
    return {"files": matched_files, "media": len(matched_media), "examples": examples}


# -- templates ----------------------------------------------------------------------------------------------
def _template_public(conn: Connection, row: Any) -> dict[str, Any]:
    names = {r.id: r.name for r in conn.execute(select(sources.c.id, sources.c.name))}
    made = conn.execute(select(func.count()).select_from(projects).where(projects.c.template_id == row.id))
    return {
        "id": row.id,
        "path": row.path,
        "sources": [names.get(s, str(s)) for s in row.sources or []],
        "kinds": row.kinds or [],
        "projects": int(made.scalar_one()),
        "created_at": iso(row.created_at),
    }


def add_template(
    ctx: Context, path: str, source_names: list[str] | None = None, kinds: list[str] | None = None
) -> dict[str, Any]:
    """A template makes a project per folder name and fills it, now (from the catalog) and at every scan."""
    compile_template(path)
    with ctx.catalog.write() as conn:
        spec = normalise_rule(
            {"sources": source_names or [], "kinds": kinds or [], "path": "**"}, _source_lookup(conn)
        )
        if conn.execute(select(project_templates.c.id).where(project_templates.c.path == path)).first():
            raise Conflict(f"the template {path!r} exists already")
        key = conn.execute(
            insert(project_templates).values(
                path=path, sources=spec.get("sources", []), kinds=spec.get("kinds", []), created_at=now_utc()
            )
        ).inserted_primary_key
        assert key is not None
        template_id = int(key[0])
    result = assign(ctx.catalog, template_ids=[template_id])
    with ctx.catalog.read() as conn:
        row = conn.execute(select(project_templates).where(project_templates.c.id == template_id)).one()
        return {**_template_public(conn, row), "projects_created": result.projects_created}


def preview_template(
    ctx: Context, path: str, source_names: list[str] | None = None, kinds: list[str] | None = None
) -> dict[str, Any]:
    """The projects a template would make and how many locations it would put in them, before saving."""
    with ctx.catalog.read() as conn:
        spec = normalise_rule(
            {"sources": source_names or [], "kinds": kinds or [], "path": "**"}, _source_lookup(conn)
        )
        template = CompiledTemplate(path, spec.get("sources"), spec.get("kinds"))
        found: dict[str, set[str]] = {}
        matched_files = 0
        for loc, media_id in _catalog_locations(conn, template.sources, template.clause()):
            name = template.project_of(loc)
            if name is not None:
                matched_files += 1
                found.setdefault(name, set()).add(media_id)
    return {
        "files": matched_files,
        "media": len(set().union(*found.values())) if found else 0,
        "projects": [{"name": n, "media": len(m)} for n, m in sorted(found.items())][:100],
        "project_count": len(found),
    }


def list_templates(ctx: Context) -> list[dict[str, Any]]:
    with ctx.catalog.read() as conn:
        return [
            _template_public(conn, r)
            for r in conn.execute(select(project_templates).order_by(project_templates.c.id))
        ]


def remove_template(ctx: Context, template_id: int) -> dict[str, Any]:
    """Stop a template. The projects it made stay, with their manual members; its own memberships go."""
    with ctx.catalog.write() as conn:
        row = conn.execute(select(project_templates).where(project_templates.c.id == template_id)).first()
        if row is None:
            raise NotFound(f"no project template {template_id}")
        forget_reasons(conn, [], [template_id])
        conn.execute(update(projects).where(projects.c.template_id == template_id).values(template_id=None))
        conn.execute(delete(project_templates).where(project_templates.c.id == template_id))
    return {"id": template_id, "path": row.path, "removed": True}


def apply_rules(ctx: Context) -> dict[str, Any]:
    """Re-apply every rule and template to the whole catalog (idempotent; no source is read)."""
    return assign(ctx.catalog).public()
