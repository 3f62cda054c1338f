"""Project rows and membership as queries: making a project (by hand, by a template, by an import), and
whether a media item is in a project (a condition used by listings and project queries)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Connection, exists, insert, select

from mediamesh.catalog import events as event_log
from mediamesh.catalog.schema import media, project_exclusions, project_members, projects
from mediamesh.catalog.times import now_utc


def in_project(project_id: int) -> ColumnElement[bool]:
    """In a project for some reason (a rule, a template, by hand), and not taken out of it by hand."""
    member = exists(
        select(project_members.c.id).where(
            project_members.c.project_id == project_id, project_members.c.media_id == media.c.id
        )
    )
    excluded = exists(
        select(project_exclusions.c.media_id).where(
            project_exclusions.c.project_id == project_id, project_exclusions.c.media_id == media.c.id
        )
    )
    return member & ~excluded


def insert_project(
    conn: Connection, name: str, description: str, origin: str, template_id: int | None = None
) -> int:
    """A new project row; returns its id. ``origin``: manual, template or import."""
    now = now_utc()
    key = conn.execute(
        insert(projects).values(
            name=name,
            description=description,
            origin=origin,
            template_id=template_id,
            created_at=now,
            updated_at=now,
        )
    ).inserted_primary_key
    assert key is not None
    project_id = int(key[0])
    event_log.append(conn, "project.created", {"project": name, "origin": origin}, project_id=project_id)
    return project_id
