"""The CLI as a user meets it: JSON documents with --json, one-line errors and exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mediamesh.cli.main import app
from tests.conftest import b3sum, write

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEDIAMESH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MEDIAMESH_SETTLE_SECONDS", "0")
    monkeypatch.delenv("MEDIAMESH_DATABASE_URL", raising=False)
    return tmp_path


def run(*args: str, code: int = 0) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "--json").stdout)


def test_add_scan_list_show_whereis(env: Path, library: Path) -> None:
    clip = write(library / "a" / "clip.mp4", 40_000)
    write(library / "b" / "clip-copy.mp4", clip.read_bytes())
    added = run_json("source", "add", "nas", str(library))
    assert added["name"] == "nas" and added["kind"] == "local" and added["health"]["status"] == "online"
    summary = run_json("scan", "nas")
    assert set(summary) >= {
        "id",
        "source",
        "status",
        "files_seen",
        "files_new",
        "files_changed",
        "files_moved",
        "files_missing",
        "bytes_hashed",
        "errors",
    }
    assert (summary["status"], summary["files_new"], summary["source"]) == ("completed", 2, "nas")
    listed = run_json("source", "list")
    assert [s["name"] for s in listed] == ["nas"] and listed[0]["files"]["present"] == 2
    media_id = b3sum(clip)[clip]
    dupes = run_json("media", "list", "--duplicates")
    assert [m["id"] for m in dupes["data"]] == [media_id]
    shown = run_json("media", "show", media_id)
    assert sorted(loc["path"] for loc in shown["locations"]) == ["a/clip.mp4", "b/clip-copy.mp4"]
    by_path = run_json("whereis", str(library / "b" / "clip-copy.mp4"))
    assert by_path["id"] == media_id
    assert run_json("whereis", "nas:a/clip.mp4")["id"] == media_id
    assert run_json("source", "check", "nas")["health"]["latency_ms"] is not None
    human = run("media", "list")
    assert media_id[:16] in human.stdout


def test_remove_forgets_records_but_never_touches_files(env: Path, library: Path) -> None:
    clip = write(library / "clip.mp4", 1000)
    run("source", "add", "nas", str(library))
    run("scan", "nas")
    removed = run_json("source", "remove", "nas")
    assert removed["files_forgotten"] == 1
    assert clip.exists() and clip.stat().st_size == 1000
    assert run_json("source", "list") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("source", "add", "Bad Name", "/tmp"), "invalid source name"),
        (("source", "add", "x", "ftp://host/path"), "unrecognised source location"),
        (("source", "show", "nope"), "no source 'nope'"),
        (("scan", "nope"), "no source 'nope'"),
        (("media", "show", "abc"), "not a media id"),
        (("media", "show", "0" * 64), "no media"),
        (("media", "list", "--state", "gone"), "invalid state"),
        (("media", "list", "--limit", "0"), "limit must be"),
        (("whereis", "no-colon-here"), "SOURCE:relative/path"),
        (("source", "add", "x", "/etc", "--exclude", "[oops"), "invalid glob"),
        (("source", "add", "x", "/etc"), "system folder"),
        (("source", "add", "x", "/root/.ssh"), "outside the folders local sources may use"),
    ],
)
def test_bad_input_gets_one_line_and_exit_2(env: Path, args: tuple[str, ...], message: str) -> None:
    result = run(*args, code=2)
    assert message in result.stderr
    assert result.stderr.count("\n") <= 2


def test_duplicate_name_and_unreachable_location(env: Path, library: Path) -> None:
    run("source", "add", "nas", str(library))
    assert "already exists" in run("source", "add", "nas", str(library), code=2).stderr
    assert "already registered" in run("source", "add", "nas2", str(library), code=2).stderr
    elsewhere = library.parent / "not-yet"
    missing = run("source", "add", "gone", str(elsewhere), code=2)
    assert "No such file" in missing.stderr and "--force" in missing.stderr
    forced = run_json("source", "add", "gone", str(elsewhere), "--force")
    assert forced["health"]["status"] == "offline" and forced["identity"] == {}
    write(elsewhere / "later.jpg", 10)  # it comes online
    assert run_json("scan", "gone")["files_new"] == 1
    assert run_json("source", "show", "gone")["identity"]["fs_type"]


def test_failed_scan_exits_1_and_says_why(env: Path, library: Path, tmp_path: Path) -> None:
    write(library / "a.jpg", 100)
    run("source", "add", "nas", str(library))
    run("scan", "nas")
    os.rename(library, tmp_path / "moved-away")
    library.mkdir()
    result = run("scan", "nas", code=1)
    assert "failed" in result.stdout and "empty" in result.stdout


def test_scan_as_a_real_process_and_kill_9_then_resume(env: Path, library: Path) -> None:
    """A scan killed with SIGKILL leaves a consistent catalog; the next one converges, no duplicate rows."""
    for i in range(400):
        write(library / f"d{i % 20}" / f"f{i}.jpg", 30_000)
    run("source", "add", "nas", str(library))
    cli = [sys.executable, "-m", "mediamesh"]
    environ = {**os.environ, "MEDIAMESH_COMMIT_BATCH": "50"}
    proc = subprocess.Popen([*cli, "scan", "nas", "--json"], env=environ, stdout=subprocess.PIPE)
    db = env / "data" / "catalog.db"
    import sqlite3
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        with sqlite3.connect(db) as conn:
            if conn.execute("select count(*) from files").fetchone()[0] >= 50:
                break
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    summary = run_json("scan", "nas")
    assert summary["status"] == "completed" and summary["files_missing"] == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*), count(distinct path) from files").fetchone() == (400, 400)
        statuses = [r[0] for r in conn.execute("select status from scans order by id")]
    assert statuses[-1] == "completed"
    assert "running" not in statuses  # the killed scan was found abandoned and marked interrupted


def test_names_with_brackets_are_shown_as_they_are(env: Path, tmp_path: Path) -> None:
    root = tmp_path / "[2024] Shoot [final]"
    write(root / "[a]" / "clip [1].mp4", 100)
    run("source", "add", "shoot", str(root))
    run("scan", "shoot")
    listing = run("media", "list").stdout
    assert "shoot:[a]/clip [1].mp4" in listing
    assert "[2024] Shoot [final]" in run("source", "show", "shoot").stdout


def test_json_output_of_every_listing_is_one_document(env: Path, library: Path) -> None:
    run("source", "add", "nas", str(library))
    for args in (("source", "list"), ("source", "show", "nas"), ("media", "list"), ("scan", "nas")):
        json.loads(run(*args, "--json").stdout)


def test_media_queries_and_schedules_from_the_cli(env: Path, library: Path) -> None:
    write(library / "Wedding" / "a.mov", 100)
    write(library / "Other" / "b.mov", 200)
    run("source", "add", "nas", str(library), "--schedule", "6h", "--priority", "5")
    shown = run_json("source", "show", "nas")
    assert (shown["schedule"], shown["priority"]) == ("6h", 5)
    assert "neither an interval" in run("source", "update", "nas", "--schedule", "often", code=2).stderr
    assert run_json("source", "update", "nas", "--schedule", "off")["schedule"] is None
    run("scan", "nas")
    found = run_json("media", "list", "--search", "wedding")
    assert [m["locations"][0]["path"] for m in found["data"]] == ["Wedding/a.mov"]
    assert run_json("media", "list", "--single-copy")["count"] == 2


def test_scan_has_two_phases(env: Path, library: Path) -> None:
    """The index, then enrichment: here when no server runs, left queued with --no-extract, left to a
    live server when one is; the jobs commands show and cancel the queued work."""
    from mediamesh.catalog import jobs as job_table
    from mediamesh.config import Settings
    from mediamesh.context import Context

    write(library / "a" / "one.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(2000))
    run("source", "add", "lib", str(library))
    later = run_json("scan", "lib", "--no-extract")
    assert later["status"] == "completed" and later["index_seconds"] > 0
    assert (later["enrichment"]["where"], later["enrichment"]["pending"]) == ("later", 1)
    job = later["enrichment"]["job"]
    shown = run_json("jobs", "show", str(job))
    assert (shown["kind"], shown["state"], shown["source"]) == ("extract", "queued", "lib")
    here = run_json("scan", "lib")  # the same job, run here now that no server is alive
    assert here["enrichment"]["where"] == "here" and here["enrichment"]["job"] == job
    assert here["enrichment"]["state"] == "completed" and here["metadata"]["probed"] == 1
    assert run_json("scan", "lib")["enrichment"] is None  # nothing left to enrich
    write(library / "b" / "two.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(3000))
    ctx = Context(Settings())
    try:  # a server's runner, alive: the CLI leaves enrichment to it
        job_table.beat_worker(ctx.catalog, job_table.new_owner(), ["scan", "extract"])
    finally:
        ctx.close()
    served = run_json("scan", "lib")
    assert served["enrichment"]["where"] == "server" and served["metadata"] is None
    listed = run_json("jobs", "list", "--state", "queued")
    assert [j["id"] for j in listed] == [served["enrichment"]["job"]]
    cancelled = run_json("jobs", "cancel", str(served["enrichment"]["job"]))
    assert cancelled["state"] == "cancelled"
    assert (
        "is not queued or running" in run("jobs", "cancel", str(served["enrichment"]["job"]), code=2).stderr
    )


def _command_paths() -> list[list[str]]:
    import typer.main

    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():  # a group
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "mediamesh")
def test_every_help_page_renders(path: list[str]) -> None:
    """Every command's and group's --help (a '[/sub]' in a help text once crashed `source add --help`)."""
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and "Traceback" not in result.output


def test_a_mistyped_scan_path_is_bad_input_and_leaves_no_record(env: Path, library: Path) -> None:
    write(library / "Projects" / "a.mp4", 100)
    run("source", "add", "lib", str(library))
    result = run("scan", "lib", "--path", "Projcts", code=2)
    assert "no folder 'Projcts' in source 'lib'" in result.stderr
    assert "not a folder" in run("scan", "lib", "--path", "Projects/a.mp4", code=2).stderr
    assert run_json("source", "show", "lib")["last_scan"] is None  # nothing in the history
    assert run_json("scan", "lib", "--path", "Projects")["files_new"] == 1


def test_overlapping_sources_are_refused(env: Path, library: Path, tmp_path: Path) -> None:
    """A source inside another (or holding it) would count each file there as two copies."""
    from mediamesh.backends import overlaps

    write(library / "Photos" / "a.jpg", 100)
    run("source", "add", "lib", str(library))
    inner = run("source", "add", "photos", str(library / "Photos"), code=2).stderr
    assert "overlaps source 'lib'" in inner and "count twice" in inner
    (tmp_path / "link").symlink_to(library / "Photos")  # the same folder by another path
    assert "overlaps" in run("source", "add", "alias", str(tmp_path / "link"), code=2).stderr
    assert "already registered" in run("source", "add", "again", str(library), "--force", code=2).stderr
    sibling = tmp_path / "library-2"
    sibling.mkdir()
    run("source", "add", "sibling", str(sibling))  # a name that merely starts the same is not inside
    assert overlaps("smb", "smb://nas/media/Photos", "smb", "smb://u@NAS:445/Media")
    assert not overlaps("smb", "smb://nas/media/Photos", "smb", "smb://nas/media/Photos2")
    assert not overlaps("smb", "smb://nas/media", "smb", "smb://nas/other")


def test_files_list_shows_a_deleted_copy(env: Path, library: Path) -> None:
    """One of two copies deleted: the scan counts 1 missing, and `files list --state missing` shows it,
    while the media (still with a copy) is not missing."""
    write(library / "a" / "clip.mp4", b"same" * 100)
    gone = write(library / "b" / "clip.mp4", b"same" * 100)
    run("source", "add", "lib", str(library))
    run("scan", "lib")
    gone.unlink()
    assert run_json("scan", "lib")["files_missing"] == 1
    missing = run_json("files", "list", "--state", "missing")
    assert [(f["source"], f["path"]) for f in missing["data"]] == [("lib", "b/clip.mp4")]
    assert run_json("media", "list", "--state", "missing")["count"] == 0
    assert "b/clip.mp4" in run("files", "list", "--state", "missing").stdout
    assert run_json("files", "list", "--path", "a")["count"] == 1


def test_add_can_scan_at_once(env: Path, library: Path, tmp_path: Path) -> None:
    write(library / "a.mp4", 100)
    added = run_json("source", "add", "lib", str(library), "--scan")
    assert (
        added["name"] == "lib" and added["scan"]["status"] == "completed" and added["scan"]["files_new"] == 1
    )
    other = tmp_path / "other"
    write(other / "b.mp4", 200)
    text = run("source", "add", "other", str(other)).stdout
    assert "next: 'mediamesh scan other'" in text and "--schedule" in text


def test_media_ids_can_be_shortened(env: Path, library: Path) -> None:
    """Like git's hashes: a unique start of a media id (6 hex digits or more) names the media."""
    for n in range(40):
        write(library / f"f{n}.mp4", f"content {n}".encode())
    run("source", "add", "lib", str(library))
    run("scan", "lib")
    ids = sorted(m["id"] for m in run_json("media", "list", "--limit", "100")["data"])
    first = ids[0]
    assert run_json("media", "show", first[:10])["id"] == first
    assert run_json("whereis", first[:8].upper())["id"] == first
    from sqlalchemy import insert

    from mediamesh.catalog.schema import media
    from mediamesh.catalog.times import now_utc
    from mediamesh.config import Settings
    from mediamesh.context import Context

    ctx = Context(Settings())
    try:  # two ids that start alike (made so: real ones rarely share 6 digits)
        with ctx.catalog.write() as conn:
            for tail in ("1", "2"):
                conn.execute(
                    insert(media).values(id="abcdef" + tail * 58, size=1, kind="other", first_seen=now_utc())
                )
    finally:
        ctx.close()
    assert "several media ids" in run("media", "show", "abcdef", code=2).stderr  # refused, not guessed
    assert run_json("media", "show", "abcdef2")["id"] == "abcdef" + "2" * 58
    assert "no media starts with" in run("media", "show", "ffffff0000", code=2).stderr
    assert "not a media id" in run("media", "show", "abc", code=2).stderr


def test_a_file_edited_in_place_leaves_replaced_media_not_missing(env: Path, library: Path) -> None:
    """Content replaced at the same path is not a loss: the old media shows 'replaced', with the path
    that held it, when, and its content now; it stays out of 'missing'."""
    clip = write(library / "cut" / "edit.mov", b"first cut" * 100)
    gone = write(library / "gone.mov", b"deleted" * 100)
    run("source", "add", "lib", str(library))
    run("scan", "lib")
    old_id = b3sum(clip)[clip]
    write(clip, b"second cut" * 100, mtime_offset=-60)  # edited in place
    gone.unlink()
    run("scan", "lib", "--confirm-missing")
    new_id = b3sum(clip)[clip]
    shown = run_json("media", "show", old_id)
    assert shown["state"] == "replaced" and shown["locations"] == []
    [old] = shown["history"]
    assert (old["source"], old["path"], old["by_media_id"]) == ("lib", "cut/edit.mov", new_id)
    assert old["replaced_at"]
    assert "replaced lib:cut/edit.mov" in run("media", "show", old_id).stdout
    assert [m["id"] for m in run_json("media", "list", "--state", "replaced")["data"]] == [old_id]
    missing = run_json("media", "list", "--state", "missing")["data"]
    assert [m["state"] for m in missing] == ["missing"] and old_id not in {m["id"] for m in missing}
    assert run_json("media", "show", new_id)["state"] == "present"


def test_a_folder_typed_relative_to_here_is_that_folder(
    env: Path, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(library / "media" / "a.mp4", 100)
    monkeypatch.chdir(library)
    added = run_json("source", "add", "here", "./media")
    assert added["location"] == str(library / "media")
    moved = library / "other"
    (library / "media").rename(moved)
    assert run_json("source", "update", "here", "--location", "other")["location"] == str(moved)
