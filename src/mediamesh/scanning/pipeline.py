"""A scan of one source (or one folder of it): preflight -> walk -> diff -> fingerprint -> commit -> finish.

Memory is bounded by one folder listing plus a fixed window of files in flight; the catalog is written in
short batches. Nothing becomes missing until the whole walk completed and the source was verified again;
a scan that stops half way (error, Ctrl-C, kill -9) has changed nothing about the files it did not reach.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update

from mediamesh.backends.base import Backend, UnreachableError, clean_relpath
from mediamesh.catalog import Catalog
from mediamesh.catalog import events as event_log
from mediamesh.catalog.prepared import Prepared
from mediamesh.catalog.scans import beat_scan, begin_scan, finish_scan, save_progress
from mediamesh.catalog.schema import files
from mediamesh.catalog.times import now_utc
from mediamesh.scanning.commit import CatalogWriter
from mediamesh.scanning.diff import diff_folder
from mediamesh.scanning.filters import PathFilter
from mediamesh.scanning.fingerprint import KNOWN_COLUMNS, Fingerprinter
from mediamesh.scanning.hashing import MMAP_MIN, MmapHashPool
from mediamesh.scanning.model import Action, KnownFile, Outcome, Result, ScanStats, Work
from mediamesh.scanning.names import path_key, under
from mediamesh.scanning.safety import MissingPolicy, ScanRefused, check_reachable, preflight
from mediamesh.scanning.walk import Walker

log = logging.getLogger(__name__)

KNOWN_IN_FOLDER = Prepared(
    select(*KNOWN_COLUMNS).where(
        files.c.source_id == bindparam("b_source"), files.c.dir_key == bindparam("b_dir")
    )
)
#: Small files travel to the hashing threads in chunks: one future per file costs more than hashing it.
CHUNK_FILES = 64
CHUNK_BYTES = 8 << 20


class InlineExecutor(cf.Executor):
    """Runs each task at once on the calling thread (for storage without I/O latency to hide)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        future: cf.Future[Any] = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def chunks(works: list[Work]) -> Iterator[list[Work]]:
    chunk: list[Work] = []
    size = 0
    for work in works:
        if chunk and (len(chunk) >= CHUNK_FILES or size + work.entry.size > CHUNK_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(work)
        size += work.entry.size
    if chunk:
        yield chunk


ProgressFn = Callable[[ScanStats], None]


class ScanInterrupted(Exception):
    """The scan was stopped (cancelled, or the source went away); it is resumable."""


@dataclass(frozen=True, slots=True)
class ScanOptions:
    path: str = ""
    confirm_missing: bool = False
    settle_seconds: float = 10.0
    workers: int = 2
    batch: int = 5000
    missing_policy: MissingPolicy = MissingPolicy(0.25, 50)  # noqa: RUF009 - immutable
    #: Who asked for the scan: cli, api, schedule, watch (recorded with the scan).
    trigger: str = "cli"
    #: Only the top folder's own files, and sub-folders the catalog does not know yet (a folder that a
    #: change notification or a poll named); known sub-folders are left as they are.
    shallow: bool = False


@dataclass(frozen=True, slots=True)
class SourceRef:
    id: int
    name: str
    identity: dict[str, str]
    path_filter: PathFilter


class Scanner:
    def __init__(
        self,
        catalog: Catalog,
        backend: Backend,
        source: SourceRef,
        options: ScanOptions,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        on_started: Callable[[int], None] | None = None,
        before_finish: Callable[[], Any] | None = None,
    ) -> None:
        self.on_started = on_started
        #: Run after the walk and before the record says how the scan ended (the assign stage): whoever
        #: sees the scan finished sees its projects too. Its result is kept in ``before_finish_result``.
        self.before_finish = before_finish
        self.before_finish_result: Any = None
        self.catalog = catalog
        self.backend = backend
        self.source = source
        self.options = options
        self.top = clean_relpath(options.path)
        self.ci = backend.features.case_insensitive
        self.top_key = path_key(self.top, self.ci)
        self.progress = progress
        self.cancel = cancel or threading.Event()
        self.stats = ScanStats()
        self._last_report = 0.0
        self._last_save = time.monotonic()
        self.scan_id = 0
        self._has_rows = True
        #: Set when the scan found the source unreachable: the caller records the source offline at once.
        self.unreachable: str | None = None

    # -- entry point -------------------------------------------------------------------------------------
    def run(self) -> int:
        """Run the scan to its end; returns the scan id. The scan row holds the outcome."""
        self.scan_id = begin_scan(self.catalog, self.source.id, self.top, self.options.trigger)
        if self.on_started is not None:
            self.on_started(self.scan_id)
        status, error = "failed", None
        beating = threading.Event()
        heart = threading.Thread(target=self._beat, args=(beating,), name="mediamesh-scan-beat", daemon=True)
        heart.start()
        try:
            preflight(
                self.backend,
                self.source.identity,
                self.source.name,
                self.top,
                self._known_present(),
                allow_empty=self.options.confirm_missing,
            )
            self._walk_and_index()
            status, error = self._finish()
        except ScanRefused as exc:
            status, error = "failed", str(exc)
            self.unreachable = exc.unreachable
        except UnreachableError as exc:
            status, error = "interrupted", str(exc)
            self.unreachable = str(exc)
        except ScanInterrupted as exc:
            status, error = "interrupted", str(exc) or "interrupted"
        except KeyboardInterrupt:
            status, error = "interrupted", "interrupted by the user"
            raise
        except Exception as exc:
            log.exception("scan %s of %s failed", self.scan_id, self.source.name)
            status, error = "failed", f"internal error: {exc.__class__.__name__}: {exc}"
        finally:
            beating.set()
            if self.before_finish is not None and error != "interrupted by the user":  # Ctrl-C: out now
                try:
                    self.before_finish_result = self.before_finish()
                except Exception:  # logged; it never changes how the scan ended
                    log.exception("the step after scan %s failed", self.scan_id)
            self._report(force=True)
            finish_scan(self.catalog, self.scan_id, status, {**self._values(), "error": error})
        return self.scan_id

    #: The scan record's heartbeat is written this often by a timer, whatever the stages do: a scan busy
    #: hashing one large file for minutes must not look abandoned to another process (catalog/scans.py).
    HEARTBEAT_SECONDS = 20.0

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(self.HEARTBEAT_SECONDS):
            try:
                beat_scan(self.catalog, self.scan_id)
            except Exception:  # the next beat tries again, well within STALE_AFTER
                log.warning("could not beat scan %s", self.scan_id, exc_info=True)

    # -- stages ------------------------------------------------------------------------------------------
    def _walk_and_index(self) -> None:
        walker = Walker(
            self.backend,
            self.top,
            self.source.path_filter,
            descend=self._unknown if self.options.shallow else None,
        )
        self._walker = walker
        writer = CatalogWriter(
            self.catalog, self.source.id, self.scan_id, self.options.batch, self.source.name
        )
        pool = MmapHashPool(1)
        self._has_rows = self._source_has_rows()
        fingerprinter = Fingerprinter(
            self.catalog,
            self.backend,
            self.source.id,
            self.options.settle_seconds,
            pool,
            lookup_content=self._has_rows,
        )
        window = self.options.workers * 4
        in_flight: set[cf.Future[list[Outcome]]] = set()

        def drain(until: int) -> None:
            while len(in_flight) > until:
                done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    in_flight.discard(fut)
                    for outcome in fut.result():
                        self._record(outcome, writer)

        executor: cf.Executor = (
            cf.ThreadPoolExecutor(self.options.workers, thread_name_prefix="mediamesh-hash")
            if self.backend.features.slow_io and self.options.workers > 1
            else InlineExecutor()
        )
        # Large local files are hashed in a worker process; a thread waits for each, so the walk goes on.
        large = cf.ThreadPoolExecutor(self.options.workers, thread_name_prefix="mediamesh-large")
        local = self.backend.features.local_paths
        with executor, large:
            try:
                for folder in walker:
                    self._check_cancel()
                    self.stats.folders += 1
                    self.stats.current_path = folder.path
                    self.stats.files_seen += len(folder.files)
                    diff = diff_folder(folder, self._known_in(folder.key), self.ci)
                    self.stats.files_unchanged += diff.unchanged
                    for path, message in diff.collisions:
                        self.stats.add_error(path, message)
                    writer.vanish(diff.vanished)
                    todo = [w for w in diff.work if w.action is not Action.TOUCH]
                    for work in diff.work:
                        if work.action is Action.TOUCH:
                            self._record(Outcome(Result.TOUCH, work), writer)
                    if self._has_rows:
                        self._attach_candidates(todo)
                    for chunk in chunks(todo):
                        big = local and chunk[0].entry.size >= MMAP_MIN
                        in_flight.add((large if big else executor).submit(fingerprinter.process_many, chunk))
                        drain(window)
                    if writer.full:
                        writer.flush()
                    self._report()
                drain(0)
                writer.flush()
            except BaseException:
                self.cancel.set()
                for fut in in_flight:
                    fut.cancel()
                raise
            finally:
                pool.close()
        for path, message in walker.errors:
            self.stats.add_error(path, message)

    def _record(self, outcome: Outcome, writer: CatalogWriter) -> None:
        self.stats.count(outcome)
        if outcome.result is Result.DEFER and len(self.stats.deferred_folders) < 1000:
            self.stats.deferred_folders.add(outcome.work.path.rpartition("/")[0])
        writer.add(outcome)
        if writer.full:
            writer.flush()
        self._report()

    def _finish(self) -> tuple[str, str | None]:
        """Flag folders that vanished, verify the source again, then (maybe) mark vanished files missing."""
        self._flag_vanished_folders()
        self._check_cancel()
        try:
            check_reachable(self.backend, self.source.identity, self.source.name)
        except ScanRefused as exc:
            self.unreachable = exc.unreachable
            return "interrupted", f"{exc} (checked again at the end of the scan; nothing was marked missing)"
        with self.catalog.read() as conn:
            vanishing = conn.execute(
                select(func.count())
                .select_from(files)
                .where(files.c.vanished_scan_id == self.scan_id, files.c.state == "present")
            ).scalar_one()
        known = self._known_present()
        if not self.options.confirm_missing and self.options.missing_policy.holds_back(vanishing, known):
            return "failed", (
                f"{vanishing} of {known} known files would be marked missing at once; nothing was marked. "
                "If they really are gone, scan again with --confirm-missing."
            )
        if vanishing:
            with self.catalog.write() as conn:
                gone = [
                    {"media": r.media_id, "path": r.path}
                    for r in conn.execute(
                        select(files.c.media_id, files.c.path).where(
                            files.c.vanished_scan_id == self.scan_id, files.c.state == "present"
                        )
                    )
                ]
                result = conn.execute(
                    update(files)
                    .where(files.c.vanished_scan_id == self.scan_id, files.c.state == "present")
                    .values(state="missing", missing_since=now_utc())
                )
                self.stats.files_missing = result.rowcount
                event_log.append_items(
                    conn,
                    "media.missing",
                    {"source": self.source.name, "scan": self.scan_id},
                    gone,
                    self.source.id,
                )
        return "completed", None

    def _flag_vanished_folders(self) -> None:
        walker = self._walker
        with self.catalog.read() as conn:
            dirs = (
                conn.execute(
                    select(files.c.dir_key)
                    .distinct()
                    .where(files.c.source_id == self.source.id, files.c.state == "present", self._in_scope())
                )
                .scalars()
                .all()
            )
        gone = [d for d in dirs if d not in walker.listed and not walker.covered(d)]
        if not gone:
            return
        with self.catalog.write() as conn:
            for dir_key in gone:
                conn.execute(
                    update(files)
                    .where(
                        files.c.source_id == self.source.id,
                        files.c.dir_key == dir_key,
                        files.c.state == "present",
                    )
                    .values(vanished_scan_id=self.scan_id)
                )

    # -- catalog reads -----------------------------------------------------------------------------------
    def _in_scope(self) -> Any:
        if not self.top_key:
            return files.c.id.is_not(None)
        lo, hi = under(self.top_key)
        return or_(files.c.dir_key == self.top_key, (files.c.dir_key >= lo) & (files.c.dir_key < hi))

    def _known_present(self) -> int:
        with self.catalog.read() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(files)
                    .where(files.c.source_id == self.source.id, files.c.state == "present", self._in_scope())
                ).scalar_one()
            )

    def _unknown(self, folder: str) -> bool:
        """No present file of the catalog is in ``folder`` or below it (a folder new to the catalog)."""
        key = path_key(folder, self.ci)
        lo, hi = under(key)
        with self.catalog.read() as conn:
            return (
                conn.execute(
                    select(files.c.id)
                    .where(
                        files.c.source_id == self.source.id,
                        files.c.state == "present",
                        or_(files.c.dir_key == key, (files.c.dir_key >= lo) & (files.c.dir_key < hi)),
                    )
                    .limit(1)
                ).first()
                is None
            )

    def _source_has_rows(self) -> bool:
        with self.catalog.read() as conn:
            return (
                conn.execute(select(files.c.id).where(files.c.source_id == self.source.id).limit(1)).first()
                is not None
            )

    def _known_in(self, dir_key: str) -> dict[str, KnownFile]:
        if not self._has_rows:
            return {}
        with self.catalog.read() as conn:
            rows = KNOWN_IN_FOLDER.fetch(conn, {"b_source": self.source.id, "b_dir": dir_key})
        return {row[3]: KnownFile(*row) for row in rows}

    def _attach_candidates(self, todo: list[Work]) -> None:
        """For new names with a file id: the known rows with that id, size and mtime (one query a folder)."""
        new = [w for w in todo if w.action is Action.NEW and w.entry.file_id is not None]
        if not new:
            return
        with self.catalog.read() as conn:
            found = conn.execute(
                select(*KNOWN_COLUMNS).where(
                    files.c.source_id == self.source.id, files.c.file_id.in_({w.entry.file_id for w in new})
                )
            ).all()
        by_id: dict[str | None, list[KnownFile]] = {}
        for row in found:
            known = KnownFile(*tuple(row))
            by_id.setdefault(known.file_id, []).append(known)
        for w in new:
            w.candidates = [
                k
                for k in by_id.get(w.entry.file_id, ())
                if (k.size, k.mtime_ns) == (w.entry.size, w.entry.mtime_ns)
            ]

    # -- progress ----------------------------------------------------------------------------------------
    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise ScanInterrupted("the scan was stopped")

    def _values(self) -> dict[str, Any]:
        s = self.stats
        return {
            "files_seen": s.files_seen,
            "files_new": s.files_new,
            "files_changed": s.files_changed,
            "files_moved": s.files_moved,
            "files_missing": s.files_missing,
            "files_unchanged": s.files_unchanged,
            "files_deferred": s.files_deferred,
            "bytes_hashed": s.bytes_hashed,
            "bytes_read": s.bytes_read,
            "errors_count": s.errors_count,
            "errors": list(s.errors),
            "current_path": s.current_path,
        }

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.progress is not None and (force or now - self._last_report >= 0.1):
            self._last_report = now
            self.progress(self.stats)
        if not force and now - self._last_save >= 1.0:
            self._last_save = now
            try:
                save_progress(self.catalog, self.scan_id, self._values())
            except Exception:  # progress is best effort; the scan itself must go on
                log.warning("could not save the progress of scan %s", self.scan_id, exc_info=True)
