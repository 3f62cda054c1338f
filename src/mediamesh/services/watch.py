"""Live changes: every watched source reports the folders that changed, and each change becomes a scan of
that folder once the writing stopped, through the job queue.

Per source (``watch``: auto, notify, poll or off; ``on`` means auto):
- **notify**: the backend's own notifications (inotify for local disks, SMB2 CHANGE_NOTIFY for shares);
- **poll**: folder signatures compared every ``MEDIAMESH_WATCH_POLL_INTERVAL`` seconds (scanning/poll.py),
  for what cannot notify (NFS, SFTP, a NAS the host mounts, more folders than inotify may watch);
- **auto**: notify where the source can, else poll (the reason is shown).

Changes are gathered per source until the source has been quiet for a moment (at most ``GATHER_MAX``:
during a long copy, the files written so far go on),
then queued as one ``scan`` job of the changed folders, due once a file written last has settled
(``MEDIAMESH_SETTLE_SECONDS``): a file still being copied is not hashed half-way, and a scan already
waiting takes the new folders in (catalog/jobs.py, ``merge``). A watched source also gets a full scan
every ``MEDIAMESH_WATCH_RECONCILE_HOURS`` when it has no schedule: a missed event is never a lost file.
A source is watched once it has been scanned whole; until then there is nothing to keep up to date.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from mediamesh.backends.base import (
    BackendError,
    InvalidPathError,
    UnreachableError,
    WatchUnsupported,
    clean_relpath,
)
from mediamesh.catalog import jobs as job_table
from mediamesh.catalog.schema import scans, sources
from mediamesh.catalog.times import aware, iso, now_utc
from mediamesh.context import Context
from mediamesh.scanning.poll import FolderPoller
from mediamesh.services.scans import MAX_FOLDERS, merge_scan_payloads
from mediamesh.services.sources import backend_for, path_filter_for, save_watch

log = logging.getLogger(__name__)

#: Changes are sent on after this many seconds without a new one...
QUIET = 1.0
#: ...or after this many seconds of changes that do not stop (a long copy), whichever comes first.
GATHER_MAX = 3.0
#: Seconds before trying again to watch a source that could not be watched (offline, refused).
RETRY = 30.0


@dataclass
class _Pending:
    folders: set[str] = field(default_factory=set)
    everything: bool = False
    first: float = 0.0
    last: float = 0.0


def _clean(folder: str | None) -> str | None:
    if folder is None:
        return None
    try:
        return clean_relpath(folder)
    except InvalidPathError:
        return None


class SourceWatch:
    """The watch of one source, on a thread of its own."""

    def __init__(self, manager: WatchManager, row: Any, catch_up: bool = False) -> None:
        self.manager = manager
        self.ctx = manager.ctx
        self.row = row
        self.mode: str = (row.options or {}).get("watch", "auto")
        self.stop = threading.Event()
        self.poller: FolderPoller | None = None
        self.thread = threading.Thread(target=self._run, name=f"mediamesh-watch-{row.id}", daemon=True)
        self.path_filter = path_filter_for(row)
        #: Set when watching broke off: changes meanwhile went unheard (see _watching). A watch that
        #: starts long after the last full scan (at server start, or switched off and on again) starts
        #: so: what changed while nobody watched is found by one scan of the whole source.
        self._lost_track = catch_up

    def start(self) -> None:
        self.thread.start()

    def close(self, wait: bool = True) -> None:
        self.stop.set()
        if wait:
            self.thread.join(timeout=10)

    def _state(self, mode: str, **info: Any) -> None:
        try:
            save_watch(self.ctx, self.row.id, {"mode": mode, "since": iso(now_utc()), **info})
        except Exception:
            log.warning("could not record the watch state of %s", self.row.name, exc_info=True)

    def _changed(self, folder: str | None) -> None:
        if folder is not None and self._excluded(folder):
            return
        self.manager.note(self.row.id, folder)

    def _excluded(self, folder: str) -> bool:
        parts = folder.split("/") if folder else []
        return any(self.path_filter.skip_dir("/".join(parts[: i + 1]), parts[i]) for i in range(len(parts)))

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self._watch()
            except UnreachableError as exc:
                self._lost_track = True
                self._state("waiting", reason=f"the source cannot be reached: {exc}; trying again")
            except BackendError as exc:
                self._lost_track = True
                log.info("watching %s stopped: %s", self.row.name, exc)
                self._state("waiting", reason=f"{exc}; trying again")
            except Exception as exc:
                self._lost_track = True
                log.exception("watching %s failed", self.row.name)
                self._state("waiting", reason=f"internal error: {exc.__class__.__name__}; trying again")
            self.poller = None
            self.stop.wait(RETRY)

    def _watching(self, mode: str, **info: Any) -> None:
        """Watching (again): after a break, what changed meanwhile was heard by no one, so the whole
        source is looked at once (a no-change scan reads no file)."""
        self._state(mode, **info)
        if self._lost_track:
            self._lost_track = False
            self.manager.note(self.row.id, None)

    def _watch(self) -> None:
        backend = backend_for(self.ctx, self.row)  # shared: never closed here
        reason = None
        if self.mode in ("auto", "notify"):
            try:
                backend.watch(self.stop, self._changed, lambda info: self._watching("notify", **info))
                return
            except WatchUnsupported as exc:
                if self.mode == "notify":
                    self._state("unavailable", reason=str(exc))
                    self.stop.wait(3600)
                    return
                reason = str(exc)
        self._poll(backend, reason)

    def _poll(self, backend: Any, reason: str | None) -> None:
        interval = self.ctx.settings.watch_poll_interval
        self._state("poll", reason=reason, interval=interval, detail="reading every folder once")
        poller = FolderPoller(backend, self.path_filter)
        poller.baseline(self.stop)
        self.poller = poller
        self._watching("poll", reason=reason, interval=interval, folders=poller.folders)
        while not self.stop.wait(interval):
            for folder in poller.poll(self.stop):
                self._changed(folder)


class WatchManager:
    """Watches every watched source of the catalog; a thread keeps the set in step with the sources
    (added, removed, unmounted, changed: rewatched) and sends gathered changes on as scans."""

    def __init__(
        self,
        ctx: Context,
        tick: float = 0.25,
        sync_every: float = 5.0,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.ctx = ctx
        #: Tells the job runner that a scan is due (else it notices within its poll, 2 s).
        self.wake = wake
        self.tick = tick
        self.sync_every = sync_every
        self._watches: dict[int, tuple[tuple[Any, ...], SourceWatch]] = {}
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Scans queued from changes, per source (shown in tests and the benchmark).
        self.queued: dict[int, int] = {}
        self._reconciled: dict[int, float] = {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mediamesh-watches", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for _, watch in list(self._watches.values()):
            watch.close(wait=False)
        for source_id, (_, watch) in list(self._watches.items()):
            watch.close()
            save_watch_quietly(self.ctx, source_id, None)  # nobody watches it once this server is gone
        self._watches.clear()

    def watching(self, source_id: int) -> SourceWatch | None:
        entry = self._watches.get(source_id)
        return entry[1] if entry else None

    def note(self, source_id: int, folder: str | None) -> None:
        """A change in ``folder`` (None: anywhere) of a source; called from the watch threads."""
        now = time.monotonic()
        with self._lock:
            pending = self._pending.get(source_id)
            if pending is None:
                pending = self._pending[source_id] = _Pending(first=now)
            pending.last = now
            if pending.everything:
                return
            clean = _clean(folder)
            # A name no folder can have (a hostile server's "..") or more folders than one scan takes:
            # the whole source is looked at, which never leaves its root, and memory stays bounded.
            if clean is None or len(pending.folders) >= MAX_FOLDERS:
                pending.everything = True
                pending.folders.clear()
            else:
                pending.folders.add(clean)

    def _run(self) -> None:
        next_sync = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_sync:
                    next_sync = time.monotonic() + self.sync_every
                    self.sync()
                self.flush()
            except Exception:  # one bad round must not end watching
                log.exception("the watch manager failed a round")
            self._stop.wait(self.tick)

    def sync(self) -> None:
        """Start, restart and stop watches to match the catalog; queue reconcile scans that are due."""
        with self.ctx.catalog.read() as conn:
            rows = conn.execute(select(sources)).all()
            full_scans = dict(
                conn.execute(
                    select(scans.c.source_id, func.max(scans.c.finished_at))
                    .where(scans.c.status == "completed", scans.c.path == "")
                    .group_by(scans.c.source_id)
                ).all()
            )
        wanted: dict[int, tuple[tuple[Any, ...], Any]] = {}
        for row in rows:
            mode = (row.options or {}).get("watch", "auto")
            if not row.enabled or mode == "off":
                continue
            if row.id not in full_scans:
                save_watch_quietly(
                    self.ctx, row.id, {"mode": "waiting", "reason": "watching starts after a first full scan"}
                )
                continue
            version = (row.kind, row.location, row.updated_at, mode, repr(row.options))
            wanted[row.id] = (version, row)
            self._reconcile(row, aware(full_scans[row.id]))
        for source_id, (version, watch) in list(self._watches.items()):
            if source_id not in wanted or wanted[source_id][0] != version:
                watch.close(wait=False)
                del self._watches[source_id]
                if source_id not in wanted:
                    mode = next(
                        ((r.options or {}).get("watch", "auto") for r in rows if r.id == source_id), "off"
                    )
                    save_watch_quietly(self.ctx, source_id, {"mode": "off"} if mode == "off" else None)
        for source_id, (version, row) in wanted.items():
            if source_id not in self._watches:
                # Nobody watched between the last full scan and now, unless that scan just ended (the
                # first scan of a source, which this sync follows within sync_every).
                last_full = aware(full_scans[source_id])
                unwatched = last_full is None or now_utc() - last_full > timedelta(
                    seconds=self.sync_every + 2
                )
                watch = SourceWatch(self, row, catch_up=unwatched)
                self._watches[source_id] = (version, watch)
                watch.start()

    def _reconcile(self, row: Any, last_full: Any) -> None:
        hours = self.ctx.settings.watch_reconcile_hours
        if hours <= 0 or (row.options or {}).get("schedule") or last_full is None:
            return
        if row.health_status not in ("online", "degraded"):
            return  # it would only fail; the health monitor says when it is back
        tried = self._reconciled.get(row.id)
        if tried is not None and time.monotonic() - tried < 3600:
            return  # asked within the hour (it may be waiting, or have failed): not again yet
        if now_utc() - last_full >= timedelta(hours=hours):
            self._reconciled[row.id] = time.monotonic()
            self._enqueue(row.id, {"path": ""}, "reconcile", 0.0)

    def flush(self) -> None:
        """Queue a scan for each source whose changes have settled down."""
        now = time.monotonic()
        ready: list[tuple[int, _Pending]] = []
        with self._lock:
            for source_id, pending in list(self._pending.items()):
                if now - pending.last >= QUIET or now - pending.first >= GATHER_MAX:
                    ready.append((source_id, self._pending.pop(source_id)))
        for source_id, pending in ready:
            payload: dict[str, Any] = (
                {"path": ""} if pending.everything else {"folders": sorted(pending.folders)}
            )
            # Due when the last write has settled; a file written meanwhile is deferred and looked at again.
            delay = max(0.0, self.ctx.settings.settle_seconds - (now - pending.last)) + 0.2
            self._enqueue(source_id, payload, "watch", delay)

    def _enqueue(self, source_id: int, payload: dict[str, Any], trigger: str, delay: float) -> None:
        try:
            job_table.enqueue(
                self.ctx.catalog,
                "scan",
                payload,
                key=f"scan:{source_id}",
                source_id=source_id,
                trigger=trigger,
                delay=timedelta(seconds=delay),
                merge=merge_scan_payloads,
            )
            self.queued[source_id] = self.queued.get(source_id, 0) + 1
            if self.wake is not None:
                timer = threading.Timer(delay + 0.05, self.wake)
                timer.daemon = True
                timer.start()
        except Exception:
            log.exception("could not queue a scan of source %s after a change", source_id)


def save_watch_quietly(ctx: Context, source_id: int, info: dict[str, Any] | None) -> None:
    """The watch state, written only when it differs from what is recorded (sync runs every few seconds)."""
    from mediamesh.catalog.schema import source_mounts

    with ctx.catalog.read() as conn:
        current = conn.execute(
            select(source_mounts.c.watch).where(source_mounts.c.source_id == source_id)
        ).scalar()
    if current is None and info is None:
        return
    if current is not None and info is not None and {k: current.get(k) for k in info} == info:
        return
    save_watch(ctx, source_id, info)


def describe_watch(source: dict[str, Any]) -> str:
    """How a source is watched, in words (the CLI's ``source show`` and the dashboard)."""
    mode = source.get("watch", "auto")
    if mode == "off" or not source.get("enabled", True):
        return "off" if mode == "off" else f"{mode} (unmounted: not watched)"
    state = (source.get("mount") or {}).get("watch") or {}
    live = state.get("mode")
    if live == "notify":
        folders = state.get("folders")
        via = state.get("via") or "change notifications"
        text = f"watching {folders} folders ({via})" if folders is not None else f"watching ({via})"
    elif live == "poll":
        interval = state.get("interval")
        text = f"polling {state.get('folders', '?')} folders every {interval:g} s" if interval else "polling"
        if state.get("detail"):
            text += f" ({state['detail']})"
        if state.get("reason"):
            text += f"; {state['reason']}"
    elif live in ("waiting", "unavailable"):
        text = f"{live}: {state.get('reason') or ''}".rstrip(": ")
    else:
        text = "not watched yet (a running server starts within seconds)"
    return f"{mode}: {text}"
