"""Figures about the catalog as a whole (sources' health, locations by state, last scans, jobs): what
``/metrics`` exports, read in one snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from mediamesh.catalog.schema import files, jobs, media, scans, sources
from mediamesh.context import Context


@dataclass
class Figures:
    sources: list[Any] = field(default_factory=list)
    #: (source name, state, count)
    files: list[tuple[str, str, int]] = field(default_factory=list)
    #: (source name, status, started at as a Unix time)
    last_scans: list[tuple[str, str, float]] = field(default_factory=list)
    media: int = 0
    #: (kind, state, count), unfinished jobs only
    jobs: list[tuple[str, str, int]] = field(default_factory=list)


def catalog_figures(ctx: Context) -> Figures:
    out = Figures()
    with ctx.catalog.read() as conn:
        out.sources = list(conn.execute(select(sources)).all())
        names = {r.id: r.name for r in out.sources}
        for source_id, state, n in conn.execute(
            select(files.c.source_id, files.c.state, func.count()).group_by(files.c.source_id, files.c.state)
        ):
            out.files.append((names.get(source_id, str(source_id)), state, int(n)))
        newest = select(func.max(scans.c.id)).group_by(scans.c.source_id).scalar_subquery()
        for scan in conn.execute(
            select(scans.c.source_id, scans.c.status, scans.c.started_at).where(scans.c.id.in_(newest))
        ):
            if scan.started_at is not None:
                name = names.get(scan.source_id, str(scan.source_id))
                out.last_scans.append((name, scan.status, scan.started_at.timestamp()))
        out.media = int(conn.execute(select(func.count()).select_from(media)).scalar_one())
        for kind, state, n in conn.execute(
            select(jobs.c.kind, jobs.c.state, func.count())
            .where(jobs.c.state.in_(("queued", "running")))
            .group_by(jobs.c.kind, jobs.c.state)
        ):
            out.jobs.append((kind, state, int(n)))
    return out
