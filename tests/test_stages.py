"""The scan's stage boundaries, pinned one by one (the net under refactors): diff decides the action of
every name from the values last seen, move claims give a vanished row to one new name only, and the
writer makes exactly the rows its outcomes say."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mediamesh.backends.base import Entry, EntryKind
from mediamesh.backends.local import LocalBackend
from mediamesh.catalog.scans import begin_scan
from mediamesh.catalog.schema import files, media
from mediamesh.context import Context
from mediamesh.scanning.commit import CatalogWriter
from mediamesh.scanning.diff import diff_folder
from mediamesh.scanning.fingerprint import Fingerprinter
from mediamesh.scanning.model import Action, KnownFile, Outcome, Result, Work
from mediamesh.scanning.names import name_key
from mediamesh.scanning.walk import Folder
from mediamesh.services import sources as source_svc
from tests.conftest import b3sum, write


def entry(name: str, size: int = 10, mtime: int = 1000, file_id: str | None = "1") -> Entry:
    return Entry(name, EntryKind.FILE, size, mtime, file_id)


def known(name: str, size: int = 10, mtime: int = 1000, file_id: str | None = "1", **kw: str) -> KnownFile:
    values = {"path": f"d/{name}", "state": "present", **kw}
    return KnownFile(
        1, values["path"], "d", name_key(name, False), size, mtime, file_id, "qfp", "m" * 64, values["state"]
    )


def test_diff_decides_from_the_values_last_seen() -> None:
    listed = [
        entry("same.mp4"),
        entry("bigger.mp4", size=11),
        entry("touched.mp4", mtime=2000),
        entry("remounted.mp4", file_id="9"),
        entry("back.mp4"),
        entry("new.mp4"),
        entry("Café.mp4"),
        entry("Café.mp4"),  # the same name in NFD: a collision, never two rows
    ]
    folder = Folder("d", "d", [(e, "video") for e in listed], {name_key(e.name, False) for e in listed})
    rows = {
        r.name_key: r
        for r in [
            known("same.mp4"),
            known("bigger.mp4"),
            known("touched.mp4"),
            known("remounted.mp4"),
            known("back.mp4", state="missing"),
            known("gone.mp4"),
            known("gone-before.mp4", state="missing"),
        ]
    }
    diff = diff_folder(folder, rows, case_insensitive=False)
    actions = {w.path: w.action for w in diff.work}
    assert actions == {
        "d/bigger.mp4": Action.CHANGED,
        "d/touched.mp4": Action.CHANGED,  # mtime differs: read again, whatever the clocks say
        "d/remounted.mp4": Action.VERIFY,
        "d/back.mp4": Action.TOUCH,
        "d/new.mp4": Action.NEW,
        "d/Café.mp4": Action.NEW,
    }
    assert diff.unchanged == 1
    assert [r.path for r in diff.vanished] == ["d/gone.mp4"]  # only a present row can vanish
    assert [p for p, _ in diff.collisions] == ["d/Café.mp4"]


def test_a_vanished_row_is_claimed_by_one_new_name_only(sqlite_ctx: Context, library: Path) -> None:
    """Two new names with the file id of one vanished row, on eight threads: one move, never two."""
    ctx = sqlite_ctx
    write(library / "old" / "clip.mp4", b"x" * 5000)
    source = source_svc.add_source(ctx, "lib", str(library))
    backend = LocalBackend(str(library))
    (library / "old" / "clip.mp4").rename(library / "clip.mp4")
    moved = backend.stat("clip.mp4")
    row = KnownFile(
        7, "old/clip.mp4", "old", "clip.mp4", moved.size, moved.mtime_ns, moved.file_id, "q", "m", "present"
    )
    fp = Fingerprinter(ctx.catalog, backend, source["id"], 0, None)
    works = [
        Work(Action.NEW, "clip.mp4", "", f"clip.mp4#{n}", moved, "video", candidates=[row]) for n in range(8)
    ]
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def go(work: Work) -> None:
        result = fp.process(work)
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=go, args=(w,)) for w in works]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    results = sorted(o.result.value for o in outcomes)
    assert results.count("move") == 1 and results.count("insert") == 7
    move = next(o for o in outcomes if o.result is Result.MOVE)
    assert (move.moved, move.bytes_read) == (row, 0)  # a move reads nothing


def test_a_copy_is_not_a_move(sqlite_ctx: Context, library: Path) -> None:
    """The old path still holds its file: the new name with the same id is a copy (hard link), hashed."""
    ctx = sqlite_ctx
    write(library / "a.mp4", b"y" * 3000)
    source = source_svc.add_source(ctx, "lib", str(library))
    backend = LocalBackend(str(library))
    (library / "b.mp4").hardlink_to(library / "a.mp4")
    a = backend.stat("a.mp4")
    row = KnownFile(3, "a.mp4", "", "a.mp4", a.size, a.mtime_ns, a.file_id, "q", "m", "present")
    fp = Fingerprinter(ctx.catalog, backend, source["id"], 0, None)
    outcome = fp.process(
        Work(Action.NEW, "b.mp4", "", "b.mp4", backend.stat("b.mp4"), "video", candidates=[row])
    )
    assert outcome.result is Result.INSERT and outcome.bytes_read == 3000


def test_the_writer_makes_what_the_outcomes_say(sqlite_ctx: Context, library: Path) -> None:
    """Inserts, one media row per content (seven files, three contents), batches flushed as they fill."""
    ctx = sqlite_ctx
    paths = [write(library / f"f{n}.mp4", f"content {n % 3}".encode()) for n in range(7)]
    source = source_svc.add_source(ctx, "lib", str(library))
    backend = LocalBackend(str(library))
    fp = Fingerprinter(ctx.catalog, backend, source["id"], 0, None, lookup_content=False)
    scan_id = begin_scan(ctx.catalog, source["id"], "")
    writer = CatalogWriter(ctx.catalog, source["id"], scan_id, batch=3)
    for p in paths:
        e = backend.stat(p.name)
        outcome = fp.process(Work(Action.NEW, p.name, "", name_key(p.name, False), e, "video"))
        assert outcome.result is Result.INSERT
        writer.add(outcome)
        if writer.full:
            writer.flush()
    writer.flush()
    with ctx.catalog.read() as conn:
        rows = {r.path: r.media_id for r in conn.execute(select(files.c.path, files.c.media_id))}
        media_ids = set(conn.execute(select(media.c.id)).scalars())
    digests = b3sum(*paths)
    assert rows == {p.name: digests[p] for p in paths}
    assert media_ids == set(digests.values()) and len(media_ids) == 3


def test_a_write_by_another_process_reaches_the_caches(sqlite_ctx: Context) -> None:
    """Two contexts on one catalog, as the server and a CLI scan: a write by one changes the generation
    the other's caches compare, within the shared generation's TTL."""
    import time

    from mediamesh.catalog import Catalog

    other = Catalog(str(sqlite_ctx.catalog.url))
    try:
        before = sqlite_ctx.catalog.generation
        with other.write() as conn:
            conn.execute(select(1))
        time.sleep(sqlite_ctx.catalog.SHARED_GENERATION_TTL + 0.1)
        assert sqlite_ctx.catalog.generation != before
        steady = sqlite_ctx.catalog.generation
        with other.write(bump=False) as conn:  # a write that changes no query result
            conn.execute(select(1))
        time.sleep(sqlite_ctx.catalog.SHARED_GENERATION_TTL + 0.1)
        assert sqlite_ctx.catalog.generation == steady
    finally:
        other.close()


def test_a_walk_drops_names_no_folder_can_hold() -> None:
    """A server lists what it likes: '..', 'a/b' or a NUL would alias another path or climb out of one."""
    from mediamesh.backends.base import Backend, Entry, EntryKind

    class Lying(Backend):
        def list_dir(self, path: str) -> list[Entry]:
            names = ["ok.jpg", "..", ".", "", "sub/evil.jpg", "nul\x00.jpg"] if not path else []
            return [Entry(n, EntryKind.FILE, 1, 0) for n in names] + (
                [Entry("d", EntryKind.DIR, 0, 0), Entry("..", EntryKind.DIR, 0, 0)] if not path else []
            )

        def stat(self, path: str) -> Entry:
            raise NotImplementedError

        def open(self, path: str) -> Any:
            raise NotImplementedError

        def identity(self) -> dict[str, str]:
            return {}

        def usage(self) -> tuple[int | None, int | None]:
            return None, None

    walked = dict(Lying().walk(""))
    assert sorted(walked) == ["", "d"]
    assert [e.name for e in walked[""]] == ["ok.jpg", "d"]  # type: ignore[union-attr]
