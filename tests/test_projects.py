"""Projects: templates that make projects by themselves, rules, manual membership that follows the content,
exclusions, rule changes without rescans, explanations, previews and project queries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mediamesh.catalog.schema import scans
from mediamesh.context import Context
from mediamesh.errors import Conflict, InvalidInput, NotFound
from mediamesh.services import media as media_svc
from mediamesh.services import projects as svc
from mediamesh.services import sources as source_svc
from mediamesh.services.scans import run_scan
from tests.conftest import b3sum, write


def names(ctx: Context) -> dict[str, int]:
    return {p["name"]: p["stats"]["media"] for p in svc.list_projects(ctx)}


def scan_count(ctx: Context) -> int:
    from sqlalchemy import func, select

    with ctx.catalog.read() as conn:
        return int(conn.execute(select(func.count()).select_from(scans)).scalar_one())


@pytest.fixture
def two_nas(ctx: Context, tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "nas19", tmp_path / "nas25"
    write(a / "Projects" / "Wedding-2024" / "ceremony.mov", 3000)
    write(a / "Projects" / "Wedding-2024" / "photos" / "ring.jpg", 1000)
    write(a / "Projects" / "Interview" / "take1.mp4", 2000)
    write(a / "Misc" / "cat.jpg", 500)
    write(b / "Projects" / "Concert" / "song.wav", 1500)
    for name, root in (("nas19", a), ("nas25", b)):
        source_svc.add_source(ctx, name, str(root))
    return a, b


def test_a_template_makes_and_fills_projects_from_folders(ctx: Context, two_nas: tuple[Path, Path]) -> None:
    a, b = two_nas
    made = svc.add_template(ctx, "Projects/{project}/**")
    assert made["projects_created"] == []  # nothing scanned yet
    for name in ("nas19", "nas25"):
        run_scan(ctx, name)
    assert names(ctx) == {"Wedding-2024": 2, "Interview": 1, "Concert": 1}
    wedding = svc.show_project(ctx, "Wedding-2024")
    assert (wedding["origin"], wedding["template"]) == ("template", "Projects/{project}/**")
    assert wedding["stats"]["kinds"] == {"video": 1, "image": 1} and wedding["stats"]["size"] == 4000

    write(b / "Projects" / "Festival" / "stage.mp4", 700)  # a new folder on the other NAS
    summary = run_scan(ctx, "nas25")
    assert summary["projects"]["projects_created"] == ["Festival"]
    assert names(ctx)["Festival"] == 1

    for f in (a / "Projects" / "Interview").iterdir():
        f.unlink()
    run_scan(ctx, "nas19", confirm_missing=True)
    assert "Interview" in names(ctx)  # its file is missing, not gone: the project stays
    source_svc.prune_missing(ctx, "nas19")
    assert names(ctx)["Interview"] == 0  # the record was pruned: kept, and shown empty


def test_rules_and_rule_changes_need_no_rescan(ctx: Context, two_nas: tuple[Path, Path]) -> None:
    for name in ("nas19", "nas25"):
        run_scan(ctx, name)
    scanned = scan_count(ctx)
    project = svc.create_project(
        ctx, "Stills", "every image on nas19", rules=[{"sources": ["nas19"], "kinds": ["image"]}]
    )
    assert project["stats"]["media"] == 2 and project["rules"][0]["sources"] == ["nas19"]
    changed = svc.update_project(ctx, "Stills", rules=[{"path": "Projects/Wedding-2024/**"}])
    assert changed["stats"]["media"] == 2 and changed["stats"]["kinds"] == {"video": 1, "image": 1}
    assert (
        svc.update_project(ctx, "Stills", rules=[{"extensions": [".JPG"], "max_size": 800}])["stats"]["media"]
        == 1
    )
    assert scan_count(ctx) == scanned  # no source was read again
    assert svc.apply_rules(ctx) == {"added": 0, "removed": 0, "projects_created": []}  # idempotent


def test_manual_membership_follows_the_content(
    ctx: Context, two_nas: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = two_nas
    run_scan(ctx, "nas19")
    cat = a / "Misc" / "cat.jpg"
    media_id = b3sum(cat)[cat]
    svc.create_project(ctx, "Pets")
    svc.add_media(ctx, "Pets", media_id)
    os.rename(cat, a / "cat-renamed.jpg")  # renamed and moved
    run_scan(ctx, "nas19")
    write(b / "Backup" / "cat.jpg", (a / "cat-renamed.jpg").read_bytes())  # and copied to another NAS
    run_scan(ctx, "nas25")
    page = media_svc.list_media(ctx, project="Pets")
    assert [m["id"] for m in page["data"]] == [media_id]
    assert len(page["data"][0]["locations"]) == 2
    assert svc.explain(ctx, media_id)["projects"] == [{"id": 1, "name": "Pets", "reasons": [{"by": "hand"}]}]


def test_a_manual_removal_wins_over_rules(ctx: Context, two_nas: tuple[Path, Path]) -> None:
    a, _ = two_nas
    run_scan(ctx, "nas19")
    svc.add_template(ctx, "Projects/{project}/**")
    ring = a / "Projects" / "Wedding-2024" / "photos" / "ring.jpg"
    ring_id = b3sum(ring)[ring]
    why = svc.explain(ctx, ring_id)
    assert why["projects"][0]["reasons"] == [
        {
            "by": "template",
            "template_id": 1,
            "template": "Projects/{project}/**",
            "location": "nas19:Projects/Wedding-2024/photos/ring.jpg",
        }
    ]
    removed = svc.remove_media(ctx, "Wedding-2024", ring_id)
    assert removed["projects"] == [] and removed["excluded_from"][0]["name"] == "Wedding-2024"
    run_scan(ctx, "nas19")
    svc.apply_rules(ctx)
    assert names(ctx)["Wedding-2024"] == 1  # still out, whatever the template says
    svc.add_media(ctx, "Wedding-2024", ring_id)  # added again: the exclusion is gone
    reasons = svc.explain(ctx, ring_id)["projects"][0]["reasons"]
    assert sorted(r["by"] for r in reasons) == ["hand", "template"]


def test_preview_and_project_queries(ctx: Context, two_nas: tuple[Path, Path]) -> None:
    for name in ("nas19", "nas25"):
        run_scan(ctx, name)
    assert svc.preview_rule(ctx, {"path": "Projects/**"})["media"] == 4
    preview = svc.preview_rule(ctx, {"path": "projects/wedding-2024/**", "kinds": ["image"]})
    assert (preview["files"], preview["media"], preview["examples"]) == (
        1,
        1,
        ["Projects/Wedding-2024/photos/ring.jpg"],
    )
    svc.create_project(ctx, "Everything", rules=[{"path": "**"}])
    source_svc.set_mounted(ctx, "nas25", False)
    stats = svc.show_project(ctx, "Everything")["stats"]
    assert stats == {
        "media": 5,
        "size": 8000,
        "kinds": {"video": 2, "image": 2, "audio": 1},
        "offline_only": 1,  # the song lives on the unmounted NAS only
        "single_copy": 5,
    }
    # The listing counts all projects in one query: the same figures, and a media item taken out by hand
    # no longer counts.
    assert next(p for p in svc.list_projects(ctx) if p["name"] == "Everything")["stats"] == stats
    song = next(m for m in media_svc.list_media(ctx, kind="audio")["data"])
    svc.remove_media(ctx, "Everything", song["id"])
    listed = next(p for p in svc.list_projects(ctx) if p["name"] == "Everything")["stats"]
    assert listed == svc.show_project(ctx, "Everything")["stats"]
    assert (listed["media"], listed["offline_only"], listed["kinds"]) == (4, 0, {"video": 2, "image": 2})


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda ctx: svc.create_project(ctx, "x", rules=[{"path": "a/[b"}]), InvalidInput, "invalid glob"),
        (
            lambda ctx: svc.create_project(ctx, "x", rules=[{"colour": "red"}]),
            InvalidInput,
            "unknown rule field",
        ),
        (
            lambda ctx: svc.create_project(ctx, "x", rules=[{"kinds": ["movie"]}]),
            InvalidInput,
            "unknown kind",
        ),
        (lambda ctx: svc.create_project(ctx, "x", rules=[{}]), InvalidInput, "at least one"),
        (lambda ctx: svc.create_project(ctx, "x", rules=[{"sources": ["nope"]}]), NotFound, "no source"),
        (
            lambda ctx: svc.create_project(ctx, "x", rules=[{"min_size": 9, "max_size": 1}]),
            InvalidInput,
            "larger",
        ),
        (
            lambda ctx: svc.create_project(ctx, "x", rules=[{"modified_after": "soon"}]),
            InvalidInput,
            "ISO 8601",
        ),
        (lambda ctx: svc.create_project(ctx, "a/b"), InvalidInput, "project name"),
        (lambda ctx: svc.add_template(ctx, "Projects/**"), InvalidInput, "exactly one"),
        (lambda ctx: svc.add_template(ctx, "{project}/{project}"), InvalidInput, "exactly one"),
        (lambda ctx: svc.show_project(ctx, "nope"), NotFound, "no project"),
        (lambda ctx: svc.add_media(ctx, "nope", "0" * 64), NotFound, "no project"),
    ],
)
def test_bad_input_says_why(ctx: Context, call: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call(ctx)  # type: ignore[operator]


def test_names_ids_and_duplicates(ctx: Context) -> None:
    made = svc.create_project(ctx, "2024", "a year")
    assert svc.show_project(ctx, "2024")["id"] == made["id"]
    with pytest.raises(Conflict):
        svc.create_project(ctx, "2024")
    with pytest.raises(NotFound):
        svc.add_media(ctx, "2024", "0" * 64)
    assert svc.remove_project(ctx, "2024")["removed"] is True


def test_the_assign_stage_looks_at_changes_only_and_catches_up_after_a_crash(
    ctx: Context, two_nas: tuple[Path, Path]
) -> None:
    from sqlalchemy import delete, func, select, update

    from mediamesh.catalog.schema import files, project_members

    a, _ = two_nas
    svc.add_template(ctx, "Projects/{project}/**")
    assert run_scan(ctx, "nas19")["projects"]["added"] == 3
    again = run_scan(ctx, "nas19")  # nothing changed: nothing to assign
    assert again["projects"] == {"added": 0, "removed": 0, "projects_created": []}
    with ctx.catalog.read() as conn:
        dirty = select(func.count()).select_from(files).where(files.c.changed_scan_id.is_not(None))
        assert conn.execute(dirty).scalar_one() == 0
    # A crash between a scan's commit and its assign stage: the rows stay marked, memberships missing.
    with ctx.catalog.write() as conn:
        conn.execute(delete(project_members))
        conn.execute(update(files).values(changed_scan_id=1))
    assert names(ctx)["Wedding-2024"] == 0
    caught_up = run_scan(ctx, "nas19")  # a scan that changes nothing still assigns what was left
    assert caught_up["projects"]["added"] == 3 and names(ctx)["Wedding-2024"] == 2
    os.rename(a / "Projects" / "Interview", a / "Projects" / "Interviews")  # a renamed project folder
    moved = run_scan(ctx, "nas19")
    assert moved["files_moved"] == 1 and moved["projects"]["projects_created"] == ["Interviews"]
    assert names(ctx)["Interviews"] == 1 and names(ctx)["Interview"] == 0  # the old one stays, empty
