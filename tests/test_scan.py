"""Scanning a real folder: ids, idempotence, moves, missing files and every data-safety rule.

Each test runs on SQLite and on PostgreSQL (the ``ctx`` fixture).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mediamesh.backends.local import LocalBackend
from mediamesh.catalog.schema import files, media, scans
from mediamesh.context import Context
from mediamesh.errors import InvalidInput
from mediamesh.scanning.filters import PathFilter
from mediamesh.scanning.pipeline import Scanner, ScanOptions, SourceRef
from mediamesh.services import media as media_svc
from mediamesh.services import sources as source_svc
from mediamesh.services.scans import list_scans, run_scan
from tests.conftest import b3sum, write
from tests.helpers import FaultyBackend, rows


def add(ctx: Context, root: Path, name: str = "lib", **kw: Any) -> dict[str, Any]:
    return source_svc.add_source(ctx, name, str(root), **kw)


def scan(ctx: Context, name: str = "lib", **kw: Any) -> dict[str, Any]:
    return run_scan(ctx, name, **kw)


def test_first_scan_indexes_media_with_b3sum_ids(ctx: Context, library: Path) -> None:
    a = write(library / "a" / "clip.mp4", 300_000)
    b = write(library / "b" / "photo.JPG", 70_000)
    c = write(library / "song.flac", 10)
    write(library / "notes.txt", 100)  # not media
    write(library / "@eaDir" / "clip.mp4" / "SYNOPHOTO_THUMB.jpg", 100)  # Synology housekeeping
    write(library / "#recycle" / "old.mp4", 100)
    write(library / "._clip.mp4", 100)  # macOS resource fork
    add(ctx, library)
    summary = scan(ctx)
    assert summary["status"] == "completed"
    assert (summary["files_seen"], summary["files_new"], summary["files_missing"]) == (3, 3, 0)
    assert summary["bytes_hashed"] == 300_010 + 70_000
    found = rows(ctx)
    assert set(found) == {"a/clip.mp4", "b/photo.JPG", "song.flac"}
    expected = b3sum(a, b, c)
    assert found["a/clip.mp4"].media_id == expected[a]
    assert found["b/photo.JPG"].media_id == expected[b]
    assert found["song.flac"].media_id == expected[c]
    kinds = {m["id"]: m["kind"] for m in media_svc.list_media(ctx)["data"]}
    assert kinds[expected[a]] == "video" and kinds[expected[b]] == "image" and kinds[expected[c]] == "audio"


def test_rescan_changes_and_reads_nothing(ctx: Context, library: Path) -> None:
    for i in range(20):
        write(library / f"d{i % 3}" / f"f{i}.jpg", 60_000)
    add(ctx, library)
    scan(ctx)
    before = rows(ctx)
    again = scan(ctx)
    assert again["status"] == "completed"
    assert (again["files_seen"], again["files_unchanged"], again["files_new"]) == (20, 20, 0)
    assert again["bytes_read"] == 0 and again["bytes_hashed"] == 0
    assert rows(ctx) == before


def test_same_content_in_two_places_is_one_media_with_two_locations(
    ctx: Context, library: Path, tmp_path: Path
) -> None:
    original = write(library / "x.mov", 100_000)
    other = tmp_path / "other"
    shutil.copytree(library, other)
    write(library / "backup" / "x-copy.mov", original.read_bytes())
    add(ctx, library)
    add(ctx, other, name="pc")
    scan(ctx)
    scan(ctx, "pc")
    dupes = media_svc.list_media(ctx, duplicates=True)
    assert dupes["count"] == 1
    item = dupes["data"][0]
    assert item["id"] == b3sum(original)[original]
    assert sorted((loc["source"], loc["path"]) for loc in item["locations"]) == [
        ("lib", "backup/x-copy.mov"),
        ("lib", "x.mov"),
        ("pc", "x.mov"),
    ]


def test_modified_file_gets_a_new_media_id_on_the_same_row(ctx: Context, library: Path) -> None:
    f = write(library / "a.png", 50_000)
    add(ctx, library)
    scan(ctx)
    old = rows(ctx)["a.png"]
    write(f, 51_000)
    summary = scan(ctx)
    new = rows(ctx)["a.png"]
    assert summary["files_changed"] == 1
    assert new.id == old.id and new.media_id != old.media_id
    assert new.media_id == b3sum(f)[f]


def test_rename_and_move_keep_the_row_and_read_nothing(ctx: Context, library: Path) -> None:
    for i in range(10):
        write(library / "in" / f"clip{i}.mp4", 200_000)
    add(ctx, library)
    scan(ctx)
    before = rows(ctx)
    os.rename(library / "in" / "clip0.mp4", library / "in" / "renamed.mp4")
    (library / "out" / "deep").mkdir(parents=True)
    os.rename(library / "in" / "clip1.mp4", library / "out" / "deep" / "clip1.mp4")
    summary = scan(ctx)
    after = rows(ctx)
    assert summary["files_moved"] == 2 and summary["files_missing"] == 0 and summary["files_new"] == 0
    assert summary["bytes_read"] == 0
    assert after["in/renamed.mp4"].id == before["in/clip0.mp4"].id
    assert after["in/renamed.mp4"].media_id == before["in/clip0.mp4"].media_id
    assert after["out/deep/clip1.mp4"].id == before["in/clip1.mp4"].id
    assert len(after) == 10


def test_move_without_the_same_inode_is_recognised_by_samples(ctx: Context, library: Path) -> None:
    """A copy-then-delete (as over a network) keeps no inode: the quick fingerprint still recognises it."""
    f = write(library / "a" / "big.mkv", 2_000_000)
    add(ctx, library)
    scan(ctx)
    before = rows(ctx)["a/big.mkv"]
    target = library / "b" / "big.mkv"
    target.parent.mkdir()
    shutil.copy2(f, target)
    f.unlink()
    summary = scan(ctx)
    after = rows(ctx)
    assert summary["files_moved"] == 1 and summary["bytes_hashed"] == 0
    assert 0 < summary["bytes_read"] <= 3 * 16 * 1024
    assert after["b/big.mkv"].id == before.id and after["b/big.mkv"].media_id == before.media_id
    assert "a/big.mkv" not in after


def test_deleted_file_goes_missing_and_comes_back_with_the_same_media(ctx: Context, library: Path) -> None:
    keep = [write(library / f"k{i}.jpg", 1000) for i in range(5)]
    gone = write(library / "gone.jpg", 1000)
    content = gone.read_bytes()
    stamp = gone.stat().st_mtime_ns
    add(ctx, library)
    scan(ctx)
    media_id = rows(ctx)["gone.jpg"].media_id
    gone.unlink()
    summary = scan(ctx)
    row = rows(ctx)["gone.jpg"]
    assert summary["files_missing"] == 1
    assert row.state == "missing" and row.missing_since is not None
    assert media_svc.show_media(ctx, media_id)["state"] == "missing"
    gone.write_bytes(content)
    os.utime(gone, ns=(stamp, stamp))
    scan(ctx)
    row = rows(ctx)["gone.jpg"]
    assert row.state == "present" and row.missing_since is None and row.media_id == media_id
    assert len(keep) == 5


def test_empty_root_is_not_scanned_and_nothing_goes_missing(
    ctx: Context, library: Path, tmp_path: Path
) -> None:
    for i in range(3):
        write(library / f"f{i}.mp3", 500)
    add(ctx, library)
    scan(ctx)
    os.rename(library, tmp_path / "away")
    library.mkdir()  # what an unmounted share looks like: an empty folder
    summary = scan(ctx)
    assert summary["status"] == "failed"
    assert "empty" in summary["error"] and "3 files" in summary["error"]
    assert {r.state for r in rows(ctx).values()} == {"present"}
    confirmed = scan(ctx, confirm_missing=True)  # the user says the folder really is empty now
    assert (confirmed["status"], confirmed["files_missing"]) == ("completed", 3)


def test_missing_root_is_not_scanned(ctx: Context, library: Path, tmp_path: Path) -> None:
    write(library / "f.mp3", 500)
    add(ctx, library)
    scan(ctx)
    os.rename(library, tmp_path / "away")
    summary = scan(ctx)
    assert summary["status"] == "failed" and "unreachable" in summary["error"]
    assert rows(ctx)["f.mp3"].state == "present"
    assert source_svc.show_source(ctx, "lib")["health"]["status"] == "offline"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_unmounted_share_is_detected_even_when_the_folder_is_not_empty(ctx: Context, tmp_path: Path) -> None:
    mount_point = tmp_path / "nas"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)], check=True)
    try:
        write(mount_point / "film.mp4", 5000)
        add(ctx, mount_point, name="nas")
        assert scan(ctx, "nas")["files_new"] == 1
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
    write(mount_point / "stray.mp4", 10)  # something wrote into the bare mount point meanwhile
    summary = scan(ctx, "nas")
    assert summary["status"] == "failed"
    assert f"not mounted: nothing is mounted at {mount_point}" in summary["error"]
    assert rows(ctx)["film.mp4"].state == "present"
    assert "stray.mp4" not in rows(ctx)
    health = source_svc.check_source(ctx, "nas")["health"]
    assert health["status"] == "offline" and health["error"].startswith("not mounted")


def test_mass_disappearance_is_held_back_until_confirmed(ctx: Context, library: Path) -> None:
    for i in range(80):
        write(library / f"f{i:02}.wav", 100)
    add(ctx, library)
    scan(ctx)
    for i in range(50):
        (library / f"f{i:02}.wav").unlink()
    held = scan(ctx)
    assert held["status"] == "failed" and "--confirm-missing" in held["error"]
    assert held["files_missing"] == 0
    assert {r.state for r in rows(ctx).values()} == {"present"}
    confirmed = scan(ctx, confirm_missing=True)
    assert confirmed["status"] == "completed" and confirmed["files_missing"] == 50


def test_small_losses_below_the_minimum_are_not_held(ctx: Context, library: Path) -> None:
    for i in range(4):
        write(library / f"f{i}.wav", 100)
    add(ctx, library)
    scan(ctx)
    for i in range(3):
        (library / f"f{i}.wav").unlink()
    assert scan(ctx)["files_missing"] == 3  # 75% but fewer than 50 files


def _scanner(ctx: Context, backend: Any, name: str = "lib", **options: Any) -> Scanner:
    with ctx.catalog.read() as conn:
        row = source_svc.find_source(conn, name)
    ref = SourceRef(row.id, row.name, dict(row.identity), PathFilter())
    return Scanner(ctx.catalog, backend, ref, ScanOptions(settle_seconds=0, **options))


def _summary(ctx: Context, scan_id: int) -> Any:
    with ctx.catalog.read() as conn:
        return conn.execute(select(scans).where(scans.c.id == scan_id)).one()


def test_a_folder_that_cannot_be_listed_keeps_its_files(ctx: Context, library: Path) -> None:
    write(library / "ok" / "a.jpg", 100)
    write(library / "locked" / "b.jpg", 100)
    write(library / "locked" / "inner" / "c.jpg", 100)
    add(ctx, library)
    scan(ctx)
    faulty = FaultyBackend(LocalBackend(str(library)), unlistable={"locked"})
    scan_id = _scanner(ctx, faulty).run()
    result = _summary(ctx, scan_id)
    assert result.status == "completed" and result.errors_count == 1
    assert result.errors[0]["path"] == "locked"
    assert {p: r.state for p, r in rows(ctx).items()} == {
        "ok/a.jpg": "present",
        "locked/b.jpg": "present",
        "locked/inner/c.jpg": "present",
    }


def test_sub_path_scan_leaves_the_rest_alone(ctx: Context, library: Path) -> None:
    write(library / "one" / "a.jpg", 100)
    write(library / "two" / "b.jpg", 100)
    add(ctx, library)
    scan(ctx)
    (library / "two" / "b.jpg").unlink()
    write(library / "one" / "new.jpg", 100)
    write(library / "two" / "new.jpg", 100)
    summary = scan(ctx, path="one")
    assert (summary["files_new"], summary["files_missing"]) == (1, 0)
    found = rows(ctx)
    assert "two/new.jpg" not in found and found["two/b.jpg"].state == "present"
    assert scan(ctx, path="two")["files_missing"] == 1


def test_sub_path_that_does_not_exist_is_bad_input(ctx: Context, library: Path) -> None:
    """A mistyped --path is refused before a scan record exists (it is not a failure of the source)."""
    write(library / "a.jpg", 100)
    add(ctx, library)
    with pytest.raises(InvalidInput, match="no folder 'nope'"):
        scan(ctx, path="nope")
    assert list_scans(ctx) == []


def test_files_still_being_written_are_deferred(ctx: Context, library: Path, tmp_path: Path) -> None:
    from tests.conftest import make_settings

    fresh = write(library / "recording.wav", 1000, mtime_offset=0)
    write(library / "old.wav", 1000)
    add(ctx, library)
    settled = Context(make_settings(tmp_path, ctx.settings.database_url, settle_seconds=3600))
    try:
        summary = run_scan(settled, "lib")
    finally:
        settled.close()
    assert (summary["files_new"], summary["files_deferred"]) == (1, 1)
    assert "recording.wav" not in rows(ctx)
    stamp = fresh.stat().st_mtime - 7200
    os.utime(fresh, (stamp, stamp))
    assert scan(ctx)["files_new"] == 1


def test_a_file_that_changes_while_read_is_deferred(ctx: Context, library: Path) -> None:
    target = write(library / "growing.mov", 200_000)
    add(ctx, library)
    faulty = FaultyBackend(LocalBackend(str(library)))

    def append(path: str) -> None:
        with open(target, "ab") as fh:
            fh.write(b"more")

    faulty.on_open = append
    result = _summary(ctx, _scanner(ctx, faulty).run())
    assert (result.status, result.files_new, result.files_deferred) == ("completed", 0, 1)
    assert rows(ctx) == {}


def test_cancelled_scan_is_interrupted_marks_nothing_and_resumes(ctx: Context, library: Path) -> None:
    for i in range(30):
        write(library / f"d{i}" / "a.jpg", 20_000)
    add(ctx, library)
    scan(ctx)
    for i in range(10):
        (library / f"d{i}" / "a.jpg").unlink()
        write(library / f"d{i}" / "b.jpg", 20_000)
    cancel = threading.Event()
    listed: list[str] = []

    class StopAfterThree(FaultyBackend):
        def list_dir(self, path: str) -> list[Any]:
            listed.append(path)
            if len(listed) == 4:  # the preflight lists the root once; then three folders of the walk
                cancel.set()
            return super().list_dir(path)

    scanner = _scanner(ctx, StopAfterThree(LocalBackend(str(library))))
    scanner.cancel = cancel
    summary = _summary(ctx, scanner.run())
    assert summary.status == "interrupted" and summary.files_missing == 0
    assert all(r.state == "present" for r in rows(ctx).values())
    resumed = scan(ctx)
    assert resumed["status"] == "completed" and resumed["files_missing"] == 10
    found = rows(ctx)
    assert len(found) == 40 and sum(r.state == "present" for r in found.values()) == 30


def test_unicode_normalisation_does_not_duplicate_rows(ctx: Context, library: Path) -> None:
    nfd = unicodedata.normalize("NFD", "Crème brûlée.jpg")
    nfc = unicodedata.normalize("NFC", nfd)
    f = write(library / nfd, 3000)
    add(ctx, library)
    scan(ctx)
    first = rows(ctx)
    os.rename(f, library / nfc)  # e.g. copied back from macOS by a tool that normalises
    summary = scan(ctx)
    after = rows(ctx)
    assert summary["files_new"] == 0 and summary["files_missing"] == 0
    assert list(after) == [nfc]
    assert after[nfc].id == first[nfd].id


def test_two_sources_scanned_at_once_do_not_lock_each_other(ctx: Context, tmp_path: Path) -> None:
    roots = []
    for name in ("one", "two"):
        root = tmp_path / name
        for i in range(200):
            write(root / f"d{i % 10}" / f"{name}{i}.jpg", 2000)
        add(ctx, root, name=name)
        roots.append(root)
    results: dict[str, dict[str, Any]] = {}

    def go(name: str) -> None:
        results[name] = run_scan(ctx, name)

    threads = [threading.Thread(target=go, args=(n,)) for n in ("one", "two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {n: (r["status"], r["files_new"]) for n, r in results.items()} == {
        "one": ("completed", 200),
        "two": ("completed", 200),
    }
    with ctx.catalog.read() as conn:
        assert conn.execute(select(func.count()).select_from(media)).scalar_one() == 400


def test_a_second_scan_of_the_same_source_is_refused_while_one_runs(ctx: Context, library: Path) -> None:
    from mediamesh.catalog.scans import begin_scan
    from mediamesh.errors import Conflict

    write(library / "a.jpg", 10)
    add(ctx, library)
    with ctx.catalog.read() as conn:
        source_id = source_svc.find_source(conn, "lib").id
    begin_scan(ctx.catalog, source_id, "")  # a live scan of this very process
    with pytest.raises(Conflict):
        scan(ctx)


def test_large_local_file_is_hashed_by_the_worker_process(ctx: Context, library: Path) -> None:
    big = write(library / "big.mxf", 70 * 1024 * 1024)
    add(ctx, library)
    summary = scan(ctx)
    assert summary["files_new"] == 1 and summary["bytes_hashed"] == 70 * 1024 * 1024
    assert rows(ctx)["big.mxf"].media_id == b3sum(big)[big]


def test_include_and_exclude_globs(ctx: Context, library: Path) -> None:
    write(library / "Projects" / "A" / "cut.mov", 10)
    write(library / "Projects" / "A" / "Proxies" / "cut_proxy.mov", 10)
    write(library / "Projects" / "A" / "edit.xml", 10)
    write(library / "Other" / "x.mov", 10)
    add(ctx, library, include=["Projects/**"], exclude=["Proxies/**"])
    scan(ctx)
    assert set(rows(ctx)) == {"Projects/A/cut.mov", "Projects/A/edit.xml"}


def test_no_duplicate_rows_after_many_scans(ctx: Context, library: Path) -> None:
    for i in range(15):
        write(library / f"f{i}.jpg", 100 + i)
    add(ctx, library)
    for i in range(3):
        scan(ctx)
        os.rename(library / f"f{i}.jpg", library / f"g{i}.jpg")
    scan(ctx)
    with ctx.catalog.read() as conn:
        total = conn.execute(select(func.count()).select_from(files)).scalar_one()
        distinct_paths = conn.execute(select(func.count(files.c.path.distinct()))).scalar_one()
    assert total == distinct_paths == 15


def test_odd_names_are_indexed_as_they_are(ctx: Context, library: Path) -> None:
    """A backslash, a leading dash, a tab, emoji, NFD and a 255-byte name: each one indexed, none an error."""
    names = [
        "back\\slash.jpg",
        "-leading-dash.mp4",
        "tab\there.mp4",
        "emoji 🎬.mov",
        "cafe\u0301.jpg",
        "x" * 251 + ".jpg",
    ]
    for n, name in enumerate(names):
        write(library / name, n + 10)
    add(ctx, library)
    summary = scan(ctx)
    assert (summary["files_new"], summary["errors_count"]) == (len(names), 0), summary["errors"]
    assert scan(ctx)["files_unchanged"] == len(names)  # and unchanged the next time, under the same names
