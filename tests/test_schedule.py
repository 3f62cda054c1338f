"""Scans on a schedule, and the server's scan queue (a global limit, one per source, cancellable)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mediamesh.catalog.scans import begin_scan, finish_scan
from mediamesh.catalog.times import now_utc
from mediamesh.context import Context
from mediamesh.errors import Conflict, InvalidInput
from mediamesh.server import job_runner
from mediamesh.services import scans as scan_svc
from mediamesh.services import sources as source_svc
from mediamesh.services.jobs import JobRunner
from mediamesh.services.scan_runner import ScanQueue
from mediamesh.services.scans import get_scan, list_scans, run_scan
from mediamesh.services.schedule import due_sources, parse_schedule, validate_schedule
from mediamesh.services.scheduler import Scheduler
from tests.conftest import write


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800),
        ("6h", 21600),
        ("1d", 86400),
        ("every 2 days", 172800),
        ("1 week", 604800),
        ("90 min", 5400),
    ],
)
def test_intervals(text: str, seconds: int) -> None:
    schedule = parse_schedule(text)
    assert schedule.interval == timedelta(seconds=seconds) and schedule.cron is None


def test_cron_is_server_local_time() -> None:
    schedule = parse_schedule("0 3 * * *")
    after = schedule.next_after(now_utc()).astimezone()
    assert (after.hour, after.minute) == (3, 0)
    assert timedelta(0) < after - now_utc() <= timedelta(days=1)


@pytest.mark.parametrize(
    ("text", "message"),
    [("10s", "too frequent"), ("hourly", "neither"), ("61 * * * *", "neither"), ("5x", "neither")],
)
def test_bad_schedules_say_why(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_schedule(text)


def test_off_clears() -> None:
    assert validate_schedule("off") is None and validate_schedule("") is None
    assert validate_schedule(" 6h ") == "6h"


def test_due_sources(ctx: Context, library: Path, tmp_path: Path) -> None:
    write(library / "a.mp4", 100)
    (tmp_path / "other").mkdir()
    (tmp_path / "third").mkdir()
    source_svc.add_source(ctx, "hourly", str(library), schedule="1h")
    source_svc.add_source(ctx, "nightly", str(tmp_path / "other"), schedule="0 3 * * *")
    source_svc.add_source(ctx, "manual", str(tmp_path / "third"))
    assert due_sources(ctx) == ["hourly"]  # never scanned: an interval is due at once; cron waits
    run_scan(ctx, "hourly")
    assert due_sources(ctx) == []
    assert due_sources(ctx, now_utc() + timedelta(minutes=61))[0] == "hourly"
    assert set(due_sources(ctx, now_utc() + timedelta(days=1, minutes=1))) == {"hourly", "nightly"}
    source_svc.set_mounted(ctx, "hourly", False)  # unmounted (and offline) sources are left alone
    assert "hourly" not in due_sources(ctx, now_utc() + timedelta(days=2))
    shown = source_svc.show_source(ctx, "nightly")
    assert shown["schedule"] == "0 3 * * *" and shown["next_scan_at"] is not None
    cleared = source_svc.update_source(ctx, "nightly", schedule="off")
    assert cleared["schedule"] is None and cleared["next_scan_at"] is None


def test_the_scheduler_scans_through_the_queue(ctx: Context, library: Path) -> None:
    write(library / "a.mp4", 100)
    source_svc.add_source(ctx, "lib", str(library), schedule="30m")
    runner, jobs = _queue(ctx)
    scheduler = Scheduler(ctx, runner, tick=0.05)
    scheduler.start()
    try:
        deadline = time.monotonic() + 20
        while not [s for s in list_scans(ctx, "lib") if s["status"] == "completed"]:
            assert time.monotonic() < deadline, list_scans(ctx, "lib")
            time.sleep(0.05)
        time.sleep(0.3)  # several more ticks: the next scan is due in 30 minutes, not now
    finally:
        scheduler.stop()
        jobs.stop()
    scans = list_scans(ctx, "lib")
    assert [(s["trigger"], s["status"], s["files_new"]) for s in scans] == [("schedule", "completed", 1)]


def _queue(ctx: Context, limit: int = 2) -> tuple[ScanQueue, JobRunner]:
    """The server's scan queue on a started embedded job runner (polling fast: the tests wait for it), on
    either catalog: the queue's own logic is under test here; tests/test_scale_out.py runs scans through
    the task engine of the PostgreSQL mode."""
    ctx.settings.max_scans = limit
    ctx.settings.task_engine = "embedded"
    ctx.catalog.dispatch = False
    jobs = job_runner(ctx)
    jobs.poll = 0.05
    jobs.start()
    return ScanQueue(ctx, jobs), jobs


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Scans that hold their slot until the gate opens (the queue logic is under test, not scanning)."""
    gate = threading.Event()

    def held_scan(ctx: Context, id_or_name: str, path: str, confirm: bool, **kw: Any) -> dict[str, Any]:
        cancel: threading.Event = kw["cancel"]
        on_started: Callable[[int], None] = kw["on_started"]
        scan_id = begin_scan(ctx.catalog, int(id_or_name), path, kw["trigger"])
        on_started(scan_id)
        while not gate.wait(0.01):
            if cancel.is_set():
                finish_scan(ctx.catalog, scan_id, "interrupted", {"error": "stopped"})
                return get_scan(ctx, scan_id)
        finish_scan(ctx.catalog, scan_id, "completed", {})
        return get_scan(ctx, scan_id)

    monkeypatch.setattr(scan_svc, "run_scan", held_scan)
    return gate


def test_queue_limit_order_and_one_per_source(
    ctx: Context, tmp_path: Path, gated: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        source_svc.add_source(ctx, name, str(tmp_path / name))
    monkeypatch.setattr("mediamesh.services.scan_runner.START_WAIT", 0.3)
    runner, jobs = _queue(ctx, limit=1)
    try:
        first = runner.start("a")
        assert first["status"] == "running" and first["trigger"] == "api"
        queued = runner.start("b", trigger="schedule")  # waits START_WAIT for a slot: none frees up
        assert (queued["status"], queued["position"], queued["id"]) == ("queued", 1, None)
        assert runner.start("c")["position"] == 2
        for again in ("a", "b"):
            with pytest.raises(Conflict, match="already running or queued"):
                runner.start(again)
        assert [q["source"] for q in runner.queued()] == ["b", "c"]
        assert runner.unqueue("c")["status"] == "cancelled"
        gated.set()
        deadline = time.monotonic() + 10
        while len([s for s in list_scans(ctx) if s["status"] == "completed"]) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert {s["source"]: s["trigger"] for s in list_scans(ctx)} == {"a": "api", "b": "schedule"}
    finally:
        jobs.stop()


def test_cancel_a_running_scan(ctx: Context, library: Path, gated: threading.Event) -> None:
    source_svc.add_source(ctx, "lib", str(library))
    runner, jobs = _queue(ctx)
    try:
        scan = runner.start("lib")
        runner.cancel(scan["id"])
        deadline = time.monotonic() + 10
        while get_scan(ctx, scan["id"])["status"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert get_scan(ctx, scan["id"])["status"] == "interrupted"
        with pytest.raises(Conflict, match="not running"):
            runner.cancel(scan["id"])
    finally:
        jobs.stop()


def test_live_progress_fields(ctx: Context, library: Path) -> None:
    write(library / "x" / "a.mp4", 100_000)
    source_svc.add_source(ctx, "lib", str(library))
    scan = run_scan(ctx, "lib")
    assert scan["elapsed_seconds"] > 0 and scan["files_per_second"] > 0
    assert scan["bytes_per_second"] > 0 and scan["current_path"] == "x"
