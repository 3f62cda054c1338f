"""Live changes: the event log, watching sources (inotify, SMB change notify, polling), and scans of what
changed, against real folders and a real Samba and OpenSSH server."""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mediamesh.backends.local import LocalBackend
from mediamesh.catalog import events as event_log
from mediamesh.catalog.schema import jobs, scans
from mediamesh.context import Context
from mediamesh.scanning import poll
from mediamesh.scanning.filters import PathFilter
from mediamesh.scanning.poll import FolderPoller
from mediamesh.server import job_runner
from mediamesh.services import projects as project_svc
from mediamesh.services import sources as source_svc
from mediamesh.services.scans import merge_scan_payloads, run_scan, scan_targets
from mediamesh.services.watch import WatchManager, describe_watch
from tests.conftest import b3sum, make_settings, write
from tests.helpers import rows
from tests.servers.samba import PASSWORD, SambaServer


def events(ctx: Context, after: int = 0) -> list[event_log.Event]:
    with ctx.catalog.read() as conn:
        return list(event_log.follow(conn, after))


def last_event(ctx: Context) -> int:
    with ctx.catalog.read() as conn:
        return event_log.last_id(conn)


def items(evs: list[event_log.Event], type_: str) -> list[dict[str, Any]]:
    return [item for e in evs if e.type == type_ for item in e.data["items"]]


def wait_for(check: Callable[[], Any], seconds: float, what: str = "") -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.05)


# -- the event log ----------------------------------------------------------------------------------------
def test_scans_write_what_changed_to_the_event_log(ctx: Context, library: Path) -> None:
    a = write(library / "a.jpg", 3000)
    b = write(library / "sub" / "b.jpg", 4000)
    c = write(library / "sub" / "c.mov", 5000)
    source_svc.add_source(ctx, "lib", str(library))
    summary = run_scan(ctx, "lib")
    first = events(ctx)
    ids = b3sum(a, b, c)
    added = {i["path"]: i["media"] for i in items(first, "media.added")}
    assert added == {"a.jpg": ids[a], "sub/b.jpg": ids[b], "sub/c.mov": ids[c]}
    started = [e for e in first if e.type == "scan.started"]
    finished = [e for e in first if e.type == "scan.finished"]
    assert [e.data["scan"] for e in started] == [e.data["scan"] for e in finished] == [summary["id"]]
    assert finished[0].data["status"] == "completed" and finished[0].data["files_new"] == 3
    assert started[0].id < min(e.id for e in first if e.type == "media.added") < finished[0].id
    assert {e.source_id for e in first if e.type.startswith("media.")} == {summary_source(ctx, "lib")}

    # Edited in place, renamed, deleted: each says what it is.
    mark = last_event(ctx)
    write(library / "a.jpg", 3100)
    os.rename(library / "sub" / "b.jpg", library / "sub" / "b-renamed.jpg")
    os.unlink(c)
    run_scan(ctx, "lib")
    second = events(ctx, mark)
    new_a = b3sum(library / "a.jpg")[library / "a.jpg"]
    assert items(second, "media.changed") == [{"media": new_a, "previous": ids[a], "path": "a.jpg"}]
    assert items(second, "media.moved") == [
        {"media": ids[b], "path": "sub/b-renamed.jpg", "from": "sub/b.jpg"}
    ]
    assert items(second, "media.missing") == [{"media": ids[c], "path": "sub/c.mov"}]
    assert not items(second, "media.added")


def summary_source(ctx: Context, name: str) -> int:
    return int(source_svc.show_source(ctx, name)["id"])


def test_a_copy_that_comes_back_is_restored(sqlite_ctx: Context, library: Path) -> None:
    ctx = sqlite_ctx
    f = write(library / "keep" / "x.jpg", 2000)
    write(library / "keep" / "other.jpg", 2000)
    content = f.read_bytes()
    source_svc.add_source(ctx, "lib", str(library))
    run_scan(ctx, "lib")
    f.unlink()
    run_scan(ctx, "lib")
    mark = last_event(ctx)
    write(f, content)
    run_scan(ctx, "lib")
    back = events(ctx, mark)
    assert items(back, "media.restored") == [{"media": b3sum(f)[f], "path": "keep/x.jpg"}]
    assert not items(back, "media.added")


def test_items_are_cut_into_events_of_bounded_size(sqlite_ctx: Context, library: Path) -> None:
    ctx = sqlite_ctx
    for i in range(event_log.ITEMS_PER_EVENT + 7):
        write(library / f"f{i:04}.jpg", i.to_bytes(4, "big") * 8)
    source_svc.add_source(ctx, "lib", str(library))
    run_scan(ctx, "lib")
    added = [e for e in events(ctx) if e.type == "media.added"]
    assert sorted(len(e.data["items"]) for e in added) == [7, event_log.ITEMS_PER_EVENT]


def test_health_and_projects_are_events(ctx: Context, library: Path) -> None:
    write(library / "Projects" / "Alpha" / "a.jpg", 1000)
    source_svc.add_source(ctx, "lib", str(library))
    row_id = summary_source(ctx, "lib")
    mark = last_event(ctx)
    offline = {"health_status": "offline", "health_error": "gone"}
    source_svc.record_health(ctx, row_id, offline)
    source_svc.record_health(ctx, row_id, offline)  # no change: no second event
    source_svc.record_health(ctx, row_id, {"health_status": "online", "health_error": None})
    health = [(e.type, e.data["was"]) for e in events(ctx, mark)]
    assert health == [("source.offline", "online"), ("source.online", "offline")]

    mark = last_event(ctx)
    project_svc.add_template(ctx, "Projects/{project}/**")
    run_scan(ctx, "lib")
    project_svc.create_project(ctx, "Manual")
    project_svc.remove_project(ctx, "Manual")
    kinds = [(e.type, e.data.get("project")) for e in events(ctx, mark) if e.type.startswith("project.")]
    assert ("project.created", "Alpha") in kinds
    assert ("project.changed", "Alpha") in kinds
    assert kinds[-2:] == [("project.created", "Manual"), ("project.removed", "Manual")]
    alpha = next(e for e in events(ctx, mark) if e.type == "project.changed" and e.data["project"] == "Alpha")
    assert alpha.data["added_count"] == 1 and alpha.data["removed_count"] == 0


def test_type_patterns() -> None:
    assert event_log.matches(["media.*"], "media.added")
    assert not event_log.matches(["media.*"], "scan.started")
    assert event_log.matches([], "scan.started")
    assert event_log.validate_patterns(["scan.*", "media.added", " "]) == ["media.added", "scan.*"]
    with pytest.raises(ValueError, match="unknown event type"):
        event_log.validate_patterns(["media.deleted"])
    with pytest.raises(ValueError):
        event_log.validate_patterns(["nothing.*"])


# -- what a scan job covers --------------------------------------------------------------------------------
def test_scan_targets_and_merging() -> None:
    assert scan_targets({"path": ""}) == [("", False)]
    assert scan_targets({"path": "a"}) == [("a", False)]
    assert scan_targets({"folders": ["b/c", "a/x", "b/c"]}) == [("a/x", True), ("b/c", True)]
    # Folders under a tree that is scanned whole are not scanned again.
    assert scan_targets({"paths": ["a"], "folders": ["a/x", "b"]}) == [("a", False), ("b", True)]
    assert scan_targets({"folders": [f"f{i}" for i in range(100)]}) == [("", False)]
    merged = merge_scan_payloads({"folders": ["a"]}, {"folders": ["b"]})
    assert merged == {"folders": ["a", "b"]}
    assert merge_scan_payloads({"path": "", "confirm_missing": False}, {"folders": ["b"]}) == {
        "confirm_missing": False,
        "path": "",
    }
    assert merge_scan_payloads({"folders": ["a"], "settle_round": 1}, {"path": "p"}) == {
        "folders": ["a"],
        "paths": ["p"],
        "settle_round": 1,
    }
    assert merge_scan_payloads({"folders": ["a"]}, {"folders": [f"f{i}" for i in range(70)]}) == {"path": ""}


# -- polling folder signatures ----------------------------------------------------------------------------
def test_the_poller_names_the_folders_that_changed(library: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(poll, "RECENT_NS", 0)  # nanosecond folder times here: only real changes count
    write(library / "a" / "one.jpg", 10)
    write(library / "b" / "deep" / "two.jpg", 10)
    write(library / "@eaDir" / "thumb.jpg", 10)  # housekeeping: never polled
    poller = FolderPoller(LocalBackend(str(library)), PathFilter())
    poller.baseline()
    assert sorted(poller.sigs) == ["", "a", "b", "b/deep"]
    assert poller.poll() == []
    write(library / "a" / "new.jpg", 10)
    (library / "c" / "d").mkdir(parents=True)
    write(library / "c" / "d" / "three.jpg", 10)
    assert poller.poll() == ["", "a"]  # the new folder c shows as a change of the root
    assert {"c", "c/d"} <= set(poller.sigs)
    shutil.rmtree(library / "b")
    assert poller.poll() == [""]  # "a" is listed again once (it was hot): unchanged, so only the root
    assert "b/deep" not in poller.sigs
    assert poller.poll() == []
    # A file growing in place changes no folder time, but a hot folder's listing shows it.
    write(library / "c" / "d" / "growing.jpg", 10)
    assert poller.poll() == ["c/d"]
    with open(library / "c" / "d" / "growing.jpg", "ab") as fh:
        fh.write(b"more")
    assert poller.poll() == ["c/d"]
    assert poller.poll() == []  # c/d listed a last time (it was hot): unchanged
    assert poller.poll() == []
    assert poller.requests == len(poller.sigs)  # a quiet round: one stat per folder, no listing


def test_a_change_within_the_same_second_is_seen(library: Path) -> None:
    """SFTP gives folder times in whole seconds: a name added in the second the folder was listed leaves
    its time as it was. A folder whose time is that recent is listed again the next round."""
    folder = library / "shoot"
    write(folder / "one.jpg", 10)
    now = int(time.time())
    os.utime(folder, (now, now))
    poller = FolderPoller(LocalBackend(str(library)), PathFilter())
    poller.baseline()
    write(folder / "two.jpg", 10)
    os.utime(folder, (now, now))  # the same second: the folder's time did not move
    assert poller.poll() == ["shoot"]
    # An old folder's time is trusted: a name slipped in without moving it waits for the full scan.
    old = now - 3600
    os.utime(folder, (old, old))
    poller.baseline()
    write(folder / "three.jpg", 10)
    os.utime(folder, (old, old))
    assert poller.poll() == []


# -- watching ---------------------------------------------------------------------------------------------
class Live:
    """A watch manager and a job runner on a context, as the server has them."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.runner = job_runner(ctx)
        self.runner.poll = 0.2
        self.watches = WatchManager(ctx, tick=0.1, sync_every=0.3)

    def __enter__(self) -> Live:
        self.runner.start()
        self.watches.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.watches.stop()
        self.runner.stop()

    def state(self, name: str) -> dict[str, Any]:
        mount = source_svc.show_source(self.ctx, name)["mount"] or {}
        return mount.get("watch") or {}


@pytest.fixture
def live_ctx(tmp_path: Path) -> Iterator[Context]:
    context = Context(make_settings(tmp_path, settle_seconds=0.5, watch_poll_interval=5))
    yield context
    context.close()


def present(ctx: Context, path: str) -> Any:
    row = rows(ctx).get(path)
    return row is not None and row.state == "present" and row


def test_a_file_copied_into_a_watched_folder_is_indexed_by_itself(live_ctx: Context, library: Path) -> None:
    ctx = live_ctx
    write(library / "Shoot" / "a.jpg", 1000)
    write(library / "Other" / "b.jpg", 1000)
    source_svc.add_source(ctx, "lib", str(library))
    with Live(ctx) as live:
        assert wait_for(lambda: live.state("lib"), 5)["mode"] == "waiting"  # nothing indexed yet
        run_scan(ctx, "lib")
        state = wait_for(lambda: live.state("lib").get("mode") == "notify" and live.state("lib"), 10)
        assert state["via"] == "inotify" and state["folders"] == 3
        assert describe_watch(source_svc.show_source(ctx, "lib")).startswith("auto: watching 3 folders")

        new = library / "Shoot" / "c.jpg"
        new.write_bytes(os.urandom(5000))
        row = wait_for(lambda: present(ctx, "Shoot/c.jpg"), 20, "the new file in the catalog")
        assert row.media_id == b3sum(new)[new]
        with ctx.catalog.read() as conn:
            scan = conn.execute(select(scans).order_by(scans.c.id.desc()).limit(1)).one()
        assert (scan.trigger, scan.path, scan.files_seen, scan.status) == ("watch", "Shoot", 2, "completed")

        # A new folder with files, and a folder deleted: both seen, the rest untouched.
        write(library / "Trip" / "day1" / "d.jpg", 700)
        shutil.rmtree(library / "Other")
        wait_for(lambda: present(ctx, "Trip/day1/d.jpg"), 20, "a file in a new folder")
        wait_for(lambda: rows(ctx)["Other/b.jpg"].state == "missing", 20, "the deleted folder's file missing")
        assert present(ctx, "Shoot/a.jpg")
    assert live.state("lib") == {}  # nobody watches once the server stopped


def test_a_file_still_being_written_is_hashed_once_it_settled(live_ctx: Context, library: Path) -> None:
    ctx = live_ctx
    write(library / "a.jpg", 1000)
    source_svc.add_source(ctx, "lib", str(library))
    run_scan(ctx, "lib")
    with Live(ctx) as live:
        wait_for(lambda: live.state("lib").get("mode") == "notify", 10)
        growing = library / "recording.mov"
        with open(growing, "wb") as fh:
            for _ in range(12):  # written for about 1.2 s, more than the settle time
                fh.write(os.urandom(4096))
                fh.flush()
                time.sleep(0.1)
        row = wait_for(lambda: present(ctx, "recording.mov"), 30, "the finished recording")
        assert row.size == 12 * 4096
        assert row.media_id == b3sum(growing)[growing]


def test_a_person_asking_for_a_scan_takes_the_place_of_a_waiting_watch_scan(
    live_ctx: Context, library: Path
) -> None:
    from mediamesh.services.scan_runner import ScanQueue

    ctx = live_ctx
    write(library / "a.jpg", 100)
    source_svc.add_source(ctx, "lib", str(library))
    run_scan(ctx, "lib")
    watches = WatchManager(ctx)
    source_id = summary_source(ctx, "lib")
    watches.note(source_id, "x")
    watches._pending[source_id].last -= 10  # quiet long enough
    watches.flush()
    queued = ScanQueue(ctx).start("lib", trigger="api")
    assert queued["status"] == "queued"
    with ctx.catalog.read() as conn:
        waiting = conn.execute(select(jobs.c.trigger, jobs.c.payload).where(jobs.c.state == "queued")).all()
    assert [(w.trigger, w.payload["path"]) for w in waiting] == [("api", "")]


def test_an_smb_share_reports_what_is_copied_onto_it(live_ctx: Context, samba: SambaServer) -> None:
    ctx = live_ctx
    folder = uuid.uuid4().hex
    write(samba.share_dir / folder / "a.jpg", 500)
    source_svc.add_source(ctx, "nas", samba.url(folder), password=PASSWORD)
    run_scan(ctx, "nas")
    with Live(ctx) as live:
        state = wait_for(lambda: live.state("nas").get("mode") == "notify" and live.state("nas"), 15)
        assert state["via"] == "SMB change notify"
        data = os.urandom(3000)
        samba.put(data, f"{folder}/Trip/day 2/b.jpg")  # a PC copying a new folder onto the share
        row = wait_for(lambda: present(ctx, "Trip/day 2/b.jpg"), 30, "the copied file in the catalog")
        local = samba.share_dir / folder / "Trip" / "day 2" / "b.jpg"
        assert row.media_id == b3sum(local)[local]
        assert live.watches.queued[summary_source(ctx, "nas")] >= 1


def test_a_source_without_notifications_is_polled(live_ctx: Context, sshd: Any) -> None:
    ctx = live_ctx
    from tests.servers.openssh import PASSWORD as SSH_PASSWORD

    folder = sshd.share_dir / uuid.uuid4().hex
    write(folder / "a.jpg", 500)
    source_svc.add_source(ctx, "box", sshd.url(folder.name), password=SSH_PASSWORD)
    run_scan(ctx, "box")
    with Live(ctx) as live:
        state = wait_for(
            lambda: (
                live.state("box").get("mode") == "poll"
                and live.state("box").get("folders")
                and live.state("box")
            ),
            20,
        )
        assert state["interval"] == 5 and state["folders"] == 1
        assert "does not report changes" in state["reason"]
        write(folder / "new" / "b.jpg", 800)
        wait_for(lambda: present(ctx, "new/b.jpg"), 30, "the new file, found by polling")


def test_watch_off_and_notify_only(live_ctx: Context, library: Path, sshd: Any) -> None:
    ctx = live_ctx
    from tests.servers.openssh import PASSWORD as SSH_PASSWORD

    write(library / "a.jpg", 100)
    folder = sshd.share_dir / uuid.uuid4().hex
    write(folder / "a.jpg", 100)
    source_svc.add_source(ctx, "lib", str(library), watch="off")
    source_svc.add_source(ctx, "box", sshd.url(folder.name), password=SSH_PASSWORD, watch="notify")
    run_scan(ctx, "lib")
    run_scan(ctx, "box")
    with Live(ctx) as live:
        state = wait_for(lambda: live.state("box").get("mode") == "unavailable" and live.state("box"), 10)
        assert "does not report changes" in state["reason"]
        time.sleep(1)
        assert live.watches.watching(summary_source(ctx, "lib")) is None
        source_svc.update_source(ctx, "lib", watch="on")  # on is auto
        assert source_svc.show_source(ctx, "lib")["watch"] == "auto"
        wait_for(lambda: live.state("lib").get("mode") == "notify", 10)
    from mediamesh.errors import InvalidInput

    with pytest.raises(InvalidInput, match="watch is one of"):
        source_svc.update_source(ctx, "lib", watch="sometimes")


def test_what_changed_while_nobody_watched_is_found_when_watching_starts(
    live_ctx: Context, library: Path
) -> None:
    """Switched off and on again, or a server started after a while: one scan of the whole source."""
    ctx = live_ctx
    write(library / "a.jpg", 100)
    source_svc.add_source(ctx, "lib", str(library))
    run_scan(ctx, "lib")
    with Live(ctx) as live:
        wait_for(lambda: live.state("lib").get("mode") == "notify", 10)
        source_svc.update_source(ctx, "lib", watch="off")
        wait_for(lambda: live.state("lib").get("mode") == "off", 10)
        write(library / "while-off" / "b.jpg", 3000)
        time.sleep(2.5)  # past sync_every + 2 s since the last full scan
        assert not present(ctx, "while-off/b.jpg")
        live.watches.sync_every = 0.1  # "long after the last full scan", without waiting for it here
        source_svc.update_source(ctx, "lib", watch="auto")
        wait_for(lambda: present(ctx, "while-off/b.jpg"), 20, "the file written while off")
    write(library / "while-stopped.jpg", 2000)  # the server is down
    time.sleep(2.5)
    with Live(ctx) as live:
        live.watches.sync_every = 0.1
        wait_for(lambda: present(ctx, "while-stopped.jpg"), 20, "the file written while stopped")


def test_a_burst_loses_nothing(live_ctx: Context, library: Path) -> None:
    """Hundreds of files in many folders at once: the watch's scans leave the catalog as a full scan."""
    ctx = live_ctx
    write(library / "seed.jpg", 100)
    source_svc.add_source(ctx, "lib", str(library))
    run_scan(ctx, "lib")
    with Live(ctx) as live:
        wait_for(lambda: live.state("lib").get("mode") == "notify", 10)
        for d in range(20):
            for f in range(25):
                (library / f"d{d:02}").mkdir(exist_ok=True)
                (library / f"d{d:02}" / f"f{f}.jpg").write_bytes(f"{d}-{f}".encode() * 50)
        wait_for(lambda: sum(1 for r in rows(ctx).values() if r.state == "present") == 501, 60, "every file")
        wait_for(lambda: not _active_jobs(ctx), 30, "the queue to drain")
    by_watch = {p: r.media_id for p, r in rows(ctx).items()}
    with ctx.catalog.read() as conn:
        triggers = {r.trigger for r in conn.execute(select(scans.c.trigger))}
    assert "watch" in triggers
    summary = run_scan(ctx, "lib")  # a full rescan finds nothing left to do
    assert (summary["files_new"], summary["files_changed"], summary["files_missing"]) == (0, 0, 0)
    assert {p: r.media_id for p, r in rows(ctx).items()} == by_watch


def _active_jobs(ctx: Context) -> bool:
    with ctx.catalog.read() as conn:
        return (
            conn.execute(
                select(jobs.c.id).where(jobs.c.state.in_(("queued", "running")), jobs.c.kind == "scan")
            ).first()
            is not None
        )


def test_a_local_folder_on_a_network_mount_is_polled() -> None:
    """The kernel hears only this machine's writes on a network mount: auto polls instead."""
    from mediamesh.backends.base import WatchUnsupported

    backend = LocalBackend("/tmp")
    backend._fs_type = "nfs4"  # what mount_of would say for a NAS the host mounts
    backend.features = type(backend.features)(local_paths=True, slow_io=True, notify=False)
    with pytest.raises(WatchUnsupported, match="network file system"):
        backend.watch(threading.Event(), lambda _: None, lambda _: None)


def test_sources_file_sets_the_watch(sqlite_ctx: Context, library: Path, tmp_path: Path) -> None:
    from mediamesh.services import bootstrap

    declared = tmp_path / "sources.yaml"
    declared.write_text(f"sources:\n  - name: archive\n    location: {library}\n    watch: poll\n")
    assert bootstrap.apply(sqlite_ctx, declared) == [{"name": "archive", "result": "added"}]
    assert source_svc.show_source(sqlite_ctx, "archive")["watch"] == "poll"
    assert bootstrap.apply(sqlite_ctx, declared)[0]["result"] == "unchanged"
    declared.write_text(f"sources:\n  - name: archive\n    location: {library}\n    watch: 'on'\n")
    assert bootstrap.apply(sqlite_ctx, declared)[0]["result"] == "updated"
    assert source_svc.show_source(sqlite_ctx, "archive")["watch"] == "auto"
    declared.write_text(f"sources:\n  - name: archive\n    location: {library}\n    watch: often\n")
    assert "watch is one of" in bootstrap.apply(sqlite_ctx, declared)[0]["error"]


def test_connections_left_idle_by_finished_threads_are_closed(samba: SambaServer) -> None:
    """A scan's threads each hold an SMB connection; once idle they are closed (each would send the NAS a
    keep-alive every few seconds for as long as the server runs), and reopened when used again."""
    from mediamesh.backends.smb import SmbBackend, SmbOptions

    folder = uuid.uuid4().hex
    write(samba.share_dir / folder / "a.jpg", 10)
    backend = SmbBackend(SmbOptions.parse(samba.url(folder)), PASSWORD)
    try:
        listed = []
        worker = threading.Thread(target=lambda: listed.append(backend.list_dir("")))
        worker.start()
        worker.join()
        assert [e.name for e in listed[0]] == ["a.jpg"]
        backend.list_dir("")  # this thread's own connection
        assert sum(1 for cache in backend._caches if cache) == 2
        assert backend.close_idle(older=3600) == 0
        assert backend.close_idle(older=0) == 1  # the finished thread's, never the caller's
        assert sum(1 for cache in backend._caches if cache) == 1
        assert backend.probe().reachable
    finally:
        backend.close()


def test_a_folder_that_cannot_be_listed_for_a_round_is_looked_at_again(library: Path) -> None:
    from tests.helpers import FaultyBackend

    write(library / "a" / "one.jpg", 10)
    backend = FaultyBackend(LocalBackend(str(library)))
    poller = FolderPoller(backend, PathFilter())
    poller.baseline()
    write(library / "a" / "two.jpg", 10)
    os.utime(library / "a", (time.time() - 60,) * 2)  # moved: it must be listed
    backend.unlistable = {"a"}
    assert poller.poll() == []  # nothing concluded, and the round goes on
    backend.unlistable = set()
    assert poller.poll() == ["a"]


def test_what_a_hostile_server_names_never_leaves_the_root_nor_grows_memory(sqlite_ctx: Context) -> None:
    """Change notifications come from the server a source points to: a name that climbs out of the root,
    or a flood of names, becomes one scan of the whole source (which never leaves its root)."""
    watches = WatchManager(sqlite_ctx)
    watches.note(1, "../../etc")
    assert watches._pending[1].everything and not watches._pending[1].folders
    for i in range(10_000):
        watches.note(2, f"flood/{i}")
    assert watches._pending[2].everything and not watches._pending[2].folders
    watches.note(3, "a/b")
    assert watches._pending[3].folders == {"a/b"} and not watches._pending[3].everything
