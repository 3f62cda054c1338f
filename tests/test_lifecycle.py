"""Source lifecycle: unmount/mount, a source moved elsewhere, restore at start that never waits for a
source, periodic health, and sources.yaml."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mediamesh.context import Context
from mediamesh.errors import InvalidInput
from mediamesh.services import bootstrap
from mediamesh.services import media as media_svc
from mediamesh.services import sources as source_svc
from mediamesh.services.lifecycle import SourceManager
from mediamesh.services.scans import run_scan
from tests.conftest import write
from tests.helpers import rows
from tests.servers.samba import PASSWORD, SambaServer


def wait_for(check: Callable[[], bool], seconds: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if check():
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds} s")


def health(ctx: Context, name: str) -> str:
    return str(source_svc.show_source(ctx, name)["health"]["status"])


def test_unmount_keeps_everything_and_shows_offline(ctx: Context, library: Path) -> None:
    for i in range(3):
        write(library / f"f{i}.jpg", 100 + i)
    source_svc.add_source(ctx, "lib", str(library))
    run_scan(ctx, "lib")
    before = {p: (r.state, r.media_id) for p, r in rows(ctx).items()}
    shown = source_svc.set_mounted(ctx, "lib", False)
    assert shown["enabled"] is False and shown["health"]["status"] == "unknown"
    assert shown["mount"]["state"] == "disconnected"
    assert media_svc.list_media(ctx, state="offline")["count"] == 3
    assert media_svc.list_media(ctx, state="present")["count"] == 0
    with pytest.raises(InvalidInput, match="unmounted"):
        run_scan(ctx, "lib")
    assert {p: (r.state, r.media_id) for p, r in rows(ctx).items()} == before
    assert source_svc.set_mounted(ctx, "lib", True)["health"]["status"] == "online"
    assert media_svc.list_media(ctx, state="present")["count"] == 3


def test_a_source_moved_elsewhere_keeps_its_ids(ctx: Context, library: Path, tmp_path: Path) -> None:
    for i in range(5):
        write(library / "sub" / f"f{i}.mov", 1000 + i)
    source_svc.add_source(ctx, "lib", str(library))
    run_scan(ctx, "lib")
    before = {p: (r.id, r.media_id) for p, r in rows(ctx).items()}
    elsewhere = tmp_path / "remounted-here"
    os.rename(library, elsewhere)
    assert run_scan(ctx, "lib")["status"] == "failed"  # the old location is gone: nothing changes
    updated = source_svc.update_source(ctx, "lib", location=str(elsewhere))
    assert updated["location"] == str(elsewhere)
    summary = run_scan(ctx, "lib")
    assert (summary["status"], summary["files_new"], summary["files_missing"], summary["bytes_hashed"]) == (
        "completed",
        0,
        0,
        0,
    )
    assert {p: (r.id, r.media_id) for p, r in rows(ctx).items()} == before


@pytest.fixture
def paused_samba(tmp_path: Path) -> Iterator[SambaServer]:
    server = SambaServer(tmp_path / "samba").start()
    yield server
    server.stop()


def test_restore_never_waits_for_a_hung_source(
    sqlite_ctx: Context, library: Path, paused_samba: SambaServer
) -> None:
    ctx = sqlite_ctx
    share = paused_samba.share_dir / uuid.uuid4().hex
    share.mkdir()
    source_svc.add_source(ctx, "nas", paused_samba.url(share.name), password=PASSWORD)
    source_svc.add_source(ctx, "disk", str(library))
    paused_samba.pause()
    manager = SourceManager(ctx, interval=0.3)
    t0 = time.monotonic()
    manager.start()
    assert time.monotonic() - t0 < 0.5
    try:
        wait_for(lambda: source_svc.show_source(ctx, "disk")["mount"] is not None, 5)
        assert health(ctx, "disk") == "online"  # not held up by the hung NAS
        assert source_svc.show_source(ctx, "disk")["mount"]["state"] == "connected"
        wait_for(lambda: health(ctx, "nas") == "offline", 15)
        assert source_svc.show_source(ctx, "nas")["mount"]["state"] == "error"
        paused_samba.resume()
        wait_for(lambda: health(ctx, "nas") == "online", 20)
        os.rename(library, library.with_name("gone"))
        wait_for(lambda: health(ctx, "disk") == "offline", 5)
        os.rename(library.with_name("gone"), library)
        wait_for(lambda: health(ctx, "disk") == "online", 5)
    finally:
        paused_samba.resume()
        manager.stop()


def test_sources_file_is_applied_idempotently(
    sqlite_ctx: Context, samba: SambaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = sqlite_ctx
    share = samba.share_dir / uuid.uuid4().hex
    write(share / "a.jpg", 100)
    secret = tmp_path / "nas.password"
    secret.write_text(PASSWORD + "\n")
    monkeypatch.setenv("NAS_PASSWORD", PASSWORD)
    local = tmp_path / "local"
    local.mkdir()
    source_svc.add_source(ctx, "runtime", str(local))  # added at runtime: the file must leave it alone
    declared = tmp_path / "sources.yaml"
    declared.write_text(
        f"""sources:
  - name: nas25
    location: {samba.url(share.name)}
    password_env: NAS_PASSWORD
    exclude: ["Proxies/**"]
  - name: nas19
    location: {samba.url(uuid.uuid4().hex)}
    password_file: {secret}
  - name: gone
    location: {tmp_path / "not-mounted-yet"}
"""
    )
    first = bootstrap.apply(ctx, declared)
    assert [(r["name"], r["result"]) for r in first] == [
        ("nas25", "added"),
        ("nas19", "added"),
        ("gone", "added"),
    ]
    assert health(ctx, "gone") == "offline" and health(ctx, "nas25") == "online"
    assert run_scan(ctx, "nas25")["files_new"] == 1
    second = bootstrap.apply(ctx, declared)
    assert [r["result"] for r in second] == ["unchanged", "unchanged", "unchanged"]
    names = sorted(s["name"] for s in source_svc.list_sources(ctx))
    assert names == ["gone", "nas19", "nas25", "runtime"]
    declared.write_text(declared.read_text().replace('["Proxies/**"]', '["Proxies/**", "*.tmp"]'))
    assert next(r["result"] for r in bootstrap.apply(ctx, declared)) == "updated"
    assert source_svc.show_source(ctx, "nas25")["exclude"] == ["Proxies/**", "*.tmp"]
    assert PASSWORD not in json.dumps(source_svc.list_sources(ctx))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources: [", "not valid YAML"),
        ("sources:\n  - name: x\n    location: /tmp\n    colour: red\n", "colour"),
        ("sources:\n  - location: /tmp\n", "sources.0.name"),
        ("sources:\n  - name: x\n    location: /tmp\n    password_env: MM_NOT_SET_ANYWHERE\n", "not set"),
    ],
)
def test_bad_sources_files_say_why(sqlite_ctx: Context, tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    try:
        results = bootstrap.apply(sqlite_ctx, path)
    except InvalidInput as exc:
        assert message in exc.message
    else:
        assert results[0]["result"] == "error" and message in results[0]["error"]


def test_a_completed_scan_brings_an_offline_source_back_online(ctx: Context, library: Path) -> None:
    """The probe saw the source down; it came back and a scan read it end to end: online at once, not at
    the next probe (the dashboard said offline next to a successful scan)."""
    write(library / "a.mp4", 100)
    source_svc.add_source(ctx, "disk", str(library))
    source_id = source_svc.show_source(ctx, "disk")["id"]
    source_svc.record_health(ctx, source_id, {"health_status": "offline", "health_error": "was unreachable"})
    assert run_scan(ctx, "disk")["status"] == "completed"
    shown = source_svc.show_source(ctx, "disk")["health"]
    assert (shown["status"], shown["error"]) == ("online", None)


def test_comparing_folders_never_holds_the_catalog_writer(
    ctx: Context, library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The overlap check resolves real paths, which a hung mount can stall: it runs before the write
    transaction, so scans and every other write go on meanwhile."""
    import threading

    from sqlalchemy import select as sa_select

    from mediamesh.backends import overlaps

    source_svc.add_source(ctx, "first", str(library))
    entered, release = threading.Event(), threading.Event()

    def hung(*args: str) -> bool:
        entered.set()
        release.wait(20)
        return overlaps(*args)

    monkeypatch.setattr(source_svc, "overlaps", hung)
    other = tmp_path / "other"
    other.mkdir()
    adding = threading.Thread(target=source_svc.add_source, args=(ctx, "second", str(other)))
    adding.start()
    try:
        assert entered.wait(20)
        done = threading.Event()

        def write() -> None:
            with ctx.catalog.write() as conn:
                conn.execute(sa_select(1))
            done.set()

        threading.Thread(target=write, daemon=True).start()
        assert done.wait(5), "a write waited for the overlap check"
    finally:
        release.set()
        adding.join(30)
    assert source_svc.show_source(ctx, "second")["name"] == "second"
