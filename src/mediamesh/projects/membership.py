"""Whether a media item is in a project, as a query condition (used by listings and project queries)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, select

from mediamesh.catalog.schema import media, project_exclusions, project_members


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
