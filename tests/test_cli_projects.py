"""``mediamesh project ...`` and ``mediamesh import`` as a person runs them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import b3sum, write
from tests.test_cli import env, run, run_json

__all__ = ["env"]  # the fixture, shared with test_cli


def test_projects_from_the_cli(env: Path, library: Path) -> None:
    clip = write(library / "Projects" / "Wedding" / "clip.mov", 3000)
    write(library / "Projects" / "Gala" / "photo.jpg", 1000)
    run("source", "add", "nas", str(library))
    run("scan", "nas")
    made = run_json("project", "template", "add", "Projects/{project}/**")
    assert sorted(made["projects_created"]) == ["Gala", "Wedding"]
    assert {p["name"] for p in run_json("project", "list")} == {"Gala", "Wedding"}
    assert run_json("project", "preview", "--kind", "image") == {
        "files": 1,
        "media": 1,
        "examples": ["Projects/Gala/photo.jpg"],
    }
    stills = run_json("project", "add", "Stills", "--kind", "image", "--description", "all images")
    assert stills["stats"]["media"] == 1
    media_id = b3sum(clip)[clip]
    added = run_json("project", "add-media", "Stills", media_id)
    assert {p["name"]: p["reasons"][0]["by"] for p in added["projects"]} == {
        "Stills": "hand",
        "Wedding": "template",
    }
    assert run_json("media", "list", "--project", "Stills")["count"] == 2
    why = run_json("project", "why", media_id)
    assert {p["name"] for p in why["projects"]} == {"Stills", "Wedding"}
    run("project", "remove-media", "Wedding", media_id)
    assert run_json("project", "show", "Wedding")["stats"]["media"] == 0
    assert run_json("project", "apply") == {"added": 0, "removed": 0, "projects_created": []}
    assert "exactly one {project}" in run("project", "template", "add", "Projects/**", code=2).stderr
    assert "invalid glob" in run("project", "add", "Bad", "--path", "a/[b", code=2).stderr
    assert "no project" in run("project", "show", "Nope", code=2).stderr
    assert run_json("project", "update", "Stills", "--name", "Stills 2024", "--no-rules")["rules"] == []
    run("project", "remove", "Stills 2024")


def test_import_an_older_listing(env: Path, library: Path, tmp_path: Path) -> None:
    write(library / "Jobs" / "a.mov", 3000)
    write(library / "Jobs" / "b.jpg", 1000)
    run("source", "add", "nas", str(library))
    run("scan", "nas")
    listing = tmp_path / "old-index.csv"
    listing.write_text(
        "path,project\n"
        "Jobs/a.mov,Client A\n"
        f"{library}/Jobs/b.jpg,Client A\n"  # an absolute path below the source's root
        "jobs/B.JPG,Client B\n"  # another case: not the same file on a case-sensitive disk
        "Jobs/gone.mov,Client A\n"
        "Jobs/b.jpg,\n"
    )
    report = run_json("import", str(listing))
    assert (report["records"], report["matched"], report["unmatched"]) == (5, 3, 2)
    assert report["projects_created"] == ["Client A"] and report["memberships_added"] == 2
    assert [u["line"] for u in report["unmatched_examples"]] == [4, 5]
    again = run_json("import", str(listing))  # idempotent
    assert (again["projects_created"], again["memberships_added"]) == ([], 0)
    assert run_json("project", "show", "Client A")["origin"] == "import"

    jsonl = tmp_path / "old.jsonl"
    jsonl.write_text(json.dumps({"path": "Jobs/b.jpg", "project": "Stills", "source": "nas"}) + "\n")
    assert run_json("import", str(jsonl))["memberships_added"] == 1
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    assert "broken.jsonl:1" in run("import", str(broken), code=2).stderr
    no_path = tmp_path / "no-path.csv"
    no_path.write_text("file,project\nx,y\n")
    assert "'path' column" in run("import", str(no_path), code=2).stderr
    assert "no source 'other'" in run("import", str(listing), "--source", "other", code=2).stderr


def test_project_show_reads_as_words(env: Path, library: Path) -> None:
    """Rules as words (no Python lists), and a template's project says where it came from once."""
    write(library / "Projects" / "Gala" / "photo.jpg", 1000)
    run("source", "add", "nas", str(library))
    run("scan", "nas")
    run("project", "template", "add", "Projects/{project}/**")
    gala = run("project", "show", "Gala").stdout
    assert gala.count("made by") == 1
    run("project", "add", "Stills", "--kind", "image", "--kind", "video", "--source", "nas")
    stills = run("project", "show", "Stills").stdout
    assert "[" not in stills and "kinds image, video" in stills and "sources nas" in stills
