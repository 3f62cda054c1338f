"""Rules as query objects: the SQL a rule pushes down never drops a location its Python match keeps
(case, Unicode, wildcards in the first folder, templates), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mediamesh.catalog.schema import files, media
from mediamesh.context import Context
from mediamesh.projects.rules import CompiledRule, CompiledTemplate, Location, normalise_rule
from mediamesh.services import sources as source_svc
from mediamesh.services.scans import run_scan
from tests.conftest import write

NAMES = [
    "Projects/Alpha/clip.MOV",
    "projects/beta/shot.mov",
    "Projects/Alpha/stills/a.jpg",
    "PROJECTS/Gamma/sound.wav",
    "Projets/Été/film.mp4",
    "Été/Projects/x.mp4",
    "Archive/2024/Projects/old.mkv",
    "top.mp4",
    "Pro%jects/_odd/y.mp4",
]

RULES = [
    {"path": "Projects/**"},
    {"path": "Projects/Alpha/*.mov"},
    {"path": "projects/*/shot.*"},
    {"path": "Pro%jects/**"},
    {"path": "Projets/Été/**"},
    {"path": "*.mp4"},
    {"path": "**/Projects/**", "kinds": ["video"]},
    {"extensions": ["MOV", "wav"]},
    {"min_size": 150, "max_size": 400},
    {"path": "P?ojects/**", "extensions": ["mov"]},
    {"kinds": ["image"], "sources": ["lib"]},
]
TEMPLATES = [
    "Projects/{project}/**",
    "projects/{project}/**",
    "**/Projects/{project}.*",
    "Pro%jects/{project}/**",
]


@pytest.fixture
def catalog_rows(ctx: Context, tmp_path: Path) -> list[tuple[Location, int]]:
    for n, name in enumerate(NAMES):
        write(tmp_path / "lib" / name, 100 + 50 * n)
    source_svc.add_source(ctx, "lib", str(tmp_path / "lib"))
    assert run_scan(ctx, "lib")["files_new"] == len(NAMES)
    with ctx.catalog.read() as conn:
        rows = conn.execute(
            select(
                files.c.id, files.c.source_id, files.c.path, files.c.size, files.c.mtime_ns, media.c.kind
            ).join(media, media.c.id == files.c.media_id)
        ).all()
    return [(Location(r.source_id, r.path, r.kind, r.size, r.mtime_ns), r.id) for r in rows]


def _through_sql(ctx: Context, clause: object) -> set[int]:
    with ctx.catalog.read() as conn:
        query = select(files.c.id).join(media, media.c.id == files.c.media_id).where(clause)  # type: ignore[arg-type]
        return set(conn.execute(query).scalars())


@pytest.mark.parametrize("raw", RULES, ids=[str(r) for r in RULES])
def test_a_rule_clause_keeps_every_match(
    ctx: Context, catalog_rows: list[tuple[Location, int]], raw: dict[str, Any]
) -> None:
    with ctx.catalog.read() as conn:
        lookup = lambda value: source_svc.find_source(conn, value).id  # noqa: E731
        rule = CompiledRule(normalise_rule(raw, lookup))
    wanted = {file_id for loc, file_id in catalog_rows if rule.matches(loc)}
    kept = _through_sql(ctx, rule.clause())
    assert wanted <= kept, f"the clause dropped {wanted - kept}"
    assert wanted, "each rule matches something here (else the test proves nothing)"
    if raw.get("path") == "Projects/Alpha/*.mov":
        assert len(kept) < len(catalog_rows), "a literal prefix narrows the rows in SQL"


@pytest.mark.parametrize("path", TEMPLATES)
def test_a_template_clause_keeps_every_match(
    ctx: Context, catalog_rows: list[tuple[Location, int]], path: str
) -> None:
    template = CompiledTemplate(path)
    wanted = {file_id for loc, file_id in catalog_rows if template.project_of(loc) is not None}
    kept = _through_sql(ctx, template.clause())
    assert wanted and wanted <= kept, f"the clause dropped {wanted - kept}"


def test_unicode_case_folding_is_kept(ctx: Context, tmp_path: Path) -> None:
    """Python's case-insensitive match takes the long s and the Kelvin sign for "s" and "k"."""
    write(tmp_path / "lib" / "Projectſ" / "a.mp4", 10)
    write(tmp_path / "lib" / "\u212aeep" / "b.mp4", 10)
    source_svc.add_source(ctx, "lib", str(tmp_path / "lib"))
    run_scan(ctx, "lib")
    for pattern, name in (("Projects/**", "Projectſ/a.mp4"), ("keep/*", "\u212aeep/b.mp4")):
        rule = CompiledRule({"path": pattern})
        with ctx.catalog.read() as conn:
            row = conn.execute(select(files.c.id, files.c.path).where(files.c.path == name)).one()
        assert rule.matches(Location(1, name, "video", 10, 0))
        assert row.id in _through_sql(ctx, rule.clause())
