"""The assign stage: put media into projects by the rules and templates, from the catalog alone.

It runs after every scan, for the scanned source, and after a rule or template changes, for that rule or
template over every source; no source is ever read. The derived memberships (rows of ``project_members``
with a rule or template and a location) are compared with what the rules say now, and only the
difference is written, so running it twice changes nothing. Manual memberships and exclusions are never
touched here. A project that a template made is kept when it loses its last location.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, bindparam, delete, insert, or_, select, update

from mediamesh.catalog import events as event_log
from mediamesh.catalog.database import Catalog
from mediamesh.catalog.schema import files, media, project_members, project_rules, project_templates, projects
from mediamesh.catalog.times import now_utc
from mediamesh.projects.membership import insert_project
from mediamesh.projects.rules import CompiledRule, CompiledTemplate, Location

# (project, media, rule, template, location): one reason for a media item to be in a project.
Reason = tuple[int, str, int | None, int | None, int]
BATCH = 5000


@dataclass
class AssignResult:
    added: int = 0
    removed: int = 0
    projects_created: list[str] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {"added": self.added, "removed": self.removed, "projects_created": self.projects_created}


def _locations(
    conn: Connection,
    source_ids: set[int] | None,
    changed_only: bool,
    seen: list[dict[str, int]],
    where: ColumnElement[bool] | None = None,
) -> Iterator[tuple[int, str, Location]]:
    """Locations to assign; with ``changed_only``, each one's mark is added to ``seen`` (to be cleared).
    ``where`` narrows them in SQL (what the rules' clauses decide)."""
    query = select(
        files.c.changed_scan_id,
        files.c.id,
        files.c.media_id,
        files.c.source_id,
        files.c.path,
        files.c.size,
        files.c.mtime_ns,
        media.c.kind,
    ).join(media, media.c.id == files.c.media_id)
    if source_ids is not None:
        query = query.where(files.c.source_id.in_(source_ids))
    if changed_only:
        query = query.where(files.c.changed_scan_id.is_not(None))
    if where is not None:
        query = query.where(where)
    for row in conn.execute(query.execution_options(yield_per=BATCH)):
        if changed_only:
            seen.append({"b_id": row.id, "b_mark": row.changed_scan_id})
        yield row.id, row.media_id, Location(row.source_id, row.path, row.kind, row.size, row.mtime_ns)


def assign(
    catalog: Catalog,
    source_ids: Iterable[int] | None = None,
    rule_ids: Iterable[int] | None = None,
    template_ids: Iterable[int] | None = None,
    changed_only: bool = False,
) -> AssignResult:
    """Recompute the memberships of the given rules and templates (all when neither is given) over the
    locations of the given sources (all when None). ``changed_only``: only over the locations that scans
    added, changed or moved since the last such run (their ``changed_scan_id`` is set by the scan and
    cleared here, in the same transaction as the memberships: a crash in between loses nothing)."""
    sources = set(source_ids) if source_ids is not None else None
    only_rules = rule_ids is not None or template_ids is not None
    with catalog.read() as conn:
        rule_rows = conn.execute(
            select(project_rules).where(project_rules.c.id.in_(list(rule_ids or [])))
            if only_rules
            else select(project_rules)
        ).all()
        template_rows = conn.execute(
            select(project_templates).where(project_templates.c.id.in_(list(template_ids or [])))
            if only_rules
            else select(project_templates)
        ).all()
        rules = [(r.id, r.project_id, CompiledRule(r.spec)) for r in rule_rows]
        templates = [(t.id, CompiledTemplate(t.path, t.sources, t.kinds)) for t in template_rows]
        if not rules and not templates:
            if changed_only:
                with catalog.write() as writer:
                    _clear_changed(writer, sources)
            return AssignResult()
        wanted_rules: set[tuple[int, str, int, int]] = set()  # (project, media, rule, file)
        wanted_templates: set[tuple[str, str, int, int]] = set()  # (project name, media, template, file)
        seen: list[dict[str, int]] = []
        # A full pass (a rule or template changed) reads only what their clauses let through; after a scan
        # the changed locations are few, and every one is read so that its mark is cleared.
        where = (
            None
            if changed_only
            else or_(*(r.clause() for _, _, r in rules), *(t.clause() for _, t in templates))
        )
        for file_id, media_id, loc in _locations(conn, sources, changed_only, seen, where):
            for rule_id, project_id, rule in rules:
                if rule.matches(loc):
                    wanted_rules.add((project_id, media_id, rule_id, file_id))
            for template_id, template in templates:
                name = template.project_of(loc)
                if name is not None:
                    wanted_templates.add((name, media_id, template_id, file_id))
    return _write(
        catalog,
        sources,
        changed_only,
        [r[0] for r in rules],
        [t[0] for t in templates],
        wanted_rules,
        wanted_templates,
        seen,
    )


def _write(
    catalog: Catalog,
    sources: set[int] | None,
    changed_only: bool,
    rule_ids: list[int],
    template_ids: list[int],
    wanted_rules: set[tuple[int, str, int, int]],
    wanted_templates: set[tuple[str, str, int, int]],
    seen: list[dict[str, int]],
) -> AssignResult:
    result = AssignResult()
    now = now_utc()
    with catalog.write() as conn:
        names = {r.name: r.id for r in conn.execute(select(projects.c.id, projects.c.name))}
        template_of = {r.id: r for r in conn.execute(select(project_templates))}
        for name, _, template_id, _ in sorted(wanted_templates):
            if name not in names:  # a new folder on some NAS: a new project, made by the template
                description = f"made by the template {template_of[template_id].path}"
                names[name] = insert_project(conn, name, description, "template", template_id)
                result.projects_created.append(name)
        wanted: set[Reason] = {(p, m, r, None, f) for p, m, r, f in wanted_rules}
        wanted |= {(names[n], m, None, t, f) for n, m, t, f in wanted_templates}
        reason = or_(project_members.c.rule_id.in_(rule_ids), project_members.c.template_id.in_(template_ids))
        query = select(
            project_members.c.id,
            project_members.c.project_id,
            project_members.c.media_id,
            project_members.c.rule_id,
            project_members.c.template_id,
            project_members.c.file_id,
        ).where(reason)
        if sources is not None or changed_only:
            query = query.join(files, files.c.id == project_members.c.file_id)
        if sources is not None:
            query = query.where(files.c.source_id.in_(sources))
        if changed_only:
            query = query.where(files.c.changed_scan_id.is_not(None))
        existing: dict[Reason, int] = {
            (r.project_id, r.media_id, r.rule_id, r.template_id, r.file_id): r.id for r in conn.execute(query)
        }
        stale = [row_id for key, row_id in existing.items() if key not in wanted]
        for start in range(0, len(stale), BATCH):
            conn.execute(
                delete(project_members).where(project_members.c.id.in_(stale[start : start + BATCH]))
            )
        new = [
            {"project_id": p, "media_id": m, "rule_id": r, "template_id": t, "file_id": f, "created_at": now}
            for p, m, r, t, f in wanted - existing.keys()
        ]
        for start in range(0, len(new), BATCH):
            conn.execute(insert(project_members), new[start : start + BATCH])
        result.added, result.removed = len(new), len(stale)
        _announce(
            conn,
            names,
            [key for key, row_id in existing.items() if key not in wanted],
            wanted - existing.keys(),
        )
        if changed_only:
            _clear_seen(conn, seen)
    return result


def _announce(conn: Connection, names: dict[str, int], gone: list[Reason], came: set[Reason]) -> None:
    """One ``project.changed`` event per project whose members changed (the media that came and went)."""
    by_id = {pid: name for name, pid in names.items()}
    per: dict[int, tuple[set[str], set[str]]] = {}
    for project_id, media_id, *_ in came:
        per.setdefault(project_id, (set(), set()))[0].add(media_id)
    for project_id, media_id, *_ in gone:
        per.setdefault(project_id, (set(), set()))[1].add(media_id)
    for project_id, (added, removed) in sorted(per.items()):
        event_log.append(
            conn,
            "project.changed",
            {
                "project": by_id.get(project_id),
                "added": sorted(added)[: event_log.ITEMS_PER_EVENT],
                "removed": sorted(removed)[: event_log.ITEMS_PER_EVENT],
                "added_count": len(added),
                "removed_count": len(removed),
            },
            project_id=project_id,
        )


def _clear_changed(conn: Connection, sources: set[int] | None) -> None:
    """The locations are assigned: scans only mark them again when they change again."""
    query = update(files).where(files.c.changed_scan_id.is_not(None)).values(changed_scan_id=None)
    if sources is not None:
        query = query.where(files.c.source_id.in_(sources))
    conn.execute(query)


_CLEAR_SEEN = (
    update(files)
    .where(files.c.id == bindparam("b_id"), files.c.changed_scan_id == bindparam("b_mark"))
    .values(changed_scan_id=None)
)


def _clear_seen(conn: Connection, seen: list[dict[str, int]]) -> None:
    """Clear the marks this run read, and only those: a location that a scan marked (again) after the
    read keeps its mark for the next run."""
    for start in range(0, len(seen), BATCH):
        conn.execute(_CLEAR_SEEN, seen[start : start + BATCH])


def forget_reasons(conn: Connection, rule_ids: list[int], template_ids: list[int]) -> None:
    """Drop the derived memberships of rules or templates that are being replaced or removed."""
    conn.execute(
        delete(project_members).where(
            or_(
                and_(project_members.c.rule_id.is_not(None), project_members.c.rule_id.in_(rule_ids)),
                and_(
                    project_members.c.template_id.is_not(None),
                    project_members.c.template_id.in_(template_ids),
                ),
            )
        )
    )
