"""Running durable jobs (see catalog/jobs.py) in this process, and the handler interface.

A handler is a plain function ``handler(ctx, job, control) -> result`` that reads its input from
``job.payload``, checks ``control.cancel`` between steps, reports with ``control.progress(...)``, and
returns a JSON-able result; it raises :class:`RetryLater` (or anything unexpected) to be tried again with
backoff, or :class:`~mediamesh.errors.MediameshError` to fail for good. Nothing in a handler knows who runs
it: the embedded :class:`JobRunner` here, or (scale-out) a task engine over PostgreSQL that calls the
same functions.

The runner has lanes, each with its own threads and job kinds, so that enrichment never holds back a
scan. A timer renews the leases of its running jobs (and learns of cancellations asked elsewhere); a
runner that stops gives its running jobs back to the queue, to be resumed at the next start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from mediamesh.catalog import jobs as job_table
from mediamesh.catalog.jobs import LEASE, Job
from mediamesh.catalog.schema import sources
from mediamesh.catalog.times import now_utc
from mediamesh.context import Context
from mediamesh.errors import Conflict, MediameshError, NotFound

log = logging.getLogger(__name__)


#: A job whose work is busy elsewhere (see _run) is looked at again after this.
BUSY_RETRY = timedelta(seconds=15)


class RetryLater(Exception):
    """The job could not be done now (a source busy elsewhere); it is tried again with backoff."""


@dataclass
class JobControl:
    """What a handler gets besides its job: cancellation and progress."""

    job: Job
    cancel: threading.Event = field(default_factory=threading.Event)
    save: Callable[[int, dict[str, Any]], None] | None = None
    values: dict[str, Any] = field(default_factory=dict)
    #: Stopped to be given back to the queue (a shutdown, a source a worker took over), not cancelled.
    give_back: bool = False
    _saved_at: float = 0.0

    def progress(self, values: dict[str, Any], force: bool = False) -> None:
        """Report progress (kept with the job; written at most once a second unless ``force``)."""
        self.values.update(values)
        now = time.monotonic()
        if self.save is not None and (force or now - self._saved_at >= 1.0):
            self._saved_at = now
            try:
                self.save(self.job.id, dict(self.values))
            except Exception:  # progress is best effort
                log.warning("could not save the progress of job %s", self.job.id, exc_info=True)


Handler = Callable[[Context, Job, JobControl], Any]


@dataclass(frozen=True, slots=True)
class Lane:
    name: str
    kinds: tuple[str, ...]
    threads: int


class JobRunner:
    """Claims and runs jobs of the given kinds on a few threads; one instance per server process."""

    def __init__(
        self,
        ctx: Context,
        handlers: dict[str, Handler],
        lanes: list[Lane],
        poll: float = 2.0,
        lease_seconds: float | None = None,
        *,
        kinds: list[str] | None = None,
        name: str | None = None,
        role: str = "server",
        source_ids: list[int] | None = None,
    ) -> None:
        """``lanes``: threads that poll the jobs table (the embedded mode). With none, jobs come from the
        task engine (``run_job_id``) and ``kinds`` says what this runner does."""
        self.ctx = ctx
        self.handlers = handlers
        self.lanes = lanes
        self.poll = poll
        if lease_seconds is None:
            lease_seconds = ctx.settings.job_lease_seconds
        self.lease = timedelta(seconds=lease_seconds) if lease_seconds else LEASE
        self.owner = job_table.new_owner()
        self._kinds = kinds
        self.name = name
        self.role = role
        self.source_ids = source_ids
        self._serving = False
        self._running: dict[int, JobControl] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pruned_at = time.monotonic()

    @property
    def kinds(self) -> list[str]:
        if self._kinds is not None:
            return sorted(self._kinds)
        return sorted({k for lane in self.lanes for k in lane.kinds})

    def _register(self) -> None:
        job_table.beat_worker(
            self.ctx.catalog,
            self.owner,
            self.kinds,
            name=self.name,
            role=self.role,
            source_ids=self.source_ids,
        )

    def start(self) -> None:
        self._serving = True
        self._register()
        self._prune()
        for lane in self.lanes:
            for i in range(lane.threads):
                self._spawn(self._work, lane, f"mediamesh-job-{lane.name}-{i}")
        self._spawn(self._beat, None, "mediamesh-job-lease")

    def _spawn(self, target: Callable[[Lane | None], None], lane: Lane | None, name: str) -> None:
        thread = threading.Thread(target=target, args=(lane,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def wake(self) -> None:
        """Look for work now (a job was just queued)."""
        self._wake.set()

    def running(self) -> dict[int, JobControl]:
        with self._lock:
            return dict(self._running)

    def stop(self, timeout: float = 30) -> None:
        """Cancel running jobs and give them back to the queue (they resume at the next start)."""
        self._stopping.set()
        self._wake.set()
        for control in self.running().values():
            control.cancel.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        try:
            job_table.forget_worker(self.ctx.catalog, self.owner)
        except Exception:
            log.warning("could not deregister job runner %s", self.owner, exc_info=True)

    # -- threads ---------------------------------------------------------------------------------------
    def _work(self, lane: Lane | None) -> None:
        assert lane is not None
        while not self._stopping.is_set():
            try:
                job = job_table.claim(self.ctx.catalog, self.owner, list(lane.kinds), self.lease)
            except Exception:
                log.exception("claiming a job failed")
                job = None
            if job is None:
                self._wake.wait(self.poll)
                self._wake.clear()
                continue
            self._run(job)

    #: Finished jobs are forgotten after a week (scans keep their own records); looked at this often.
    PRUNE_EVERY = 3600.0

    def _prune(self) -> None:
        self._pruned_at = time.monotonic()
        try:
            job_table.prune_finished(self.ctx.catalog)
        except Exception:  # the next round tries again
            log.warning("forgetting finished jobs failed", exc_info=True)

    def _beat(self, _: Lane | None) -> None:
        interval = self.lease.total_seconds() / 4
        while not self._stopping.wait(interval):
            if self._serving and time.monotonic() - self._pruned_at >= self.PRUNE_EVERY:
                self._prune()
            try:
                running = self.running()
                for job_id in job_table.renew(self.ctx.catalog, self.owner, list(running), self.lease):
                    running[job_id].cancel.set()
                if self._serving:  # a runner that takes jobs (not the CLI running one job of its own)
                    self._register()
            except Exception:  # the next beat tries again, well within the lease
                log.warning("renewing job leases failed", exc_info=True)

    def run_here(
        self,
        job_id: int,
        listener: Callable[[dict[str, Any]], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> dict[str, Any] | None:
        """Claim one given job and run it on this thread, its lease renewed meanwhile (the CLI running
        what no server will). Returns the job as it ended, or None when another runner has it."""
        job = job_table.claim(self.ctx.catalog, self.owner, [], self.lease, job_id=job_id)
        if job is None:
            return None
        self._spawn(self._beat, None, "mediamesh-job-lease")
        try:
            self._run(job, listener, cancel)
        finally:
            self._stopping.set()
        with self.ctx.catalog.read() as conn:
            return job_table.get_job(conn, job.id)

    def _run(
        self,
        job: Job,
        listener: Callable[[dict[str, Any]], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        catalog = self.ctx.catalog

        def save(job_id: int, values: dict[str, Any]) -> None:
            job_table.save_job_progress(catalog, job_id, values)
            if listener is not None:
                listener(values)

        control = JobControl(job, cancel=cancel or threading.Event(), save=save)
        with self._lock:
            self._running[job.id] = control
        try:
            handler = self.handlers.get(job.kind)
            if handler is None:
                job_table.finish(catalog, self.owner, job.id, "failed", error=f"no handler for {job.kind!r}")
                return
            try:
                result = handler(self.ctx, job, control)
            except MediameshError as exc:
                if isinstance(exc, Conflict):
                    # Busy elsewhere: a CLI scan of the same source, or the scan record of a runner that
                    # died on another machine (it counts as abandoned once its heartbeat is stale). Waiting
                    # is no failure: looked at again shortly, without using up an attempt.
                    job_table.release(
                        catalog, self.owner, job.id, exc.message, delay=BUSY_RETRY, count_attempt=False
                    )
                else:  # bad input: retrying cannot help; the code lets a waiting caller raise it again
                    job_table.finish(
                        catalog, self.owner, job.id, "failed", {"error_code": exc.code}, exc.message
                    )
                return
            except RetryLater as exc:
                self._retry(job, str(exc))
                return
            except Exception as exc:
                log.exception("job %s (%s) failed", job.id, job.kind)
                self._retry(job, f"internal error: {exc.__class__.__name__}: {exc}")
                return
            stopped = self._stopping.is_set() or control.give_back or cancel is not None
            if control.cancel.is_set() and stopped:
                # Stopped by a shutdown (or the CLI's Ctrl-C), not by a cancellation: the job goes back to
                # the queue, to be resumed by the next runner, as if never begun.
                job_table.release(catalog, self.owner, job.id, count_attempt=False)
            elif control.cancel.is_set():
                job_table.finish(catalog, self.owner, job.id, "cancelled", result, "cancelled")
            else:
                job_table.finish(catalog, self.owner, job.id, "completed", result)
        except Exception:
            log.exception("recording the end of job %s failed; its lease will run out", job.id)
        finally:
            with self._lock:
                self._running.pop(job.id, None)

    def give_back(self, job_ids: list[int]) -> None:
        """Stop these running jobs and put them back in the queue (not cancelled): another runner
        resumes them (a worker took their source over)."""
        for job_id, control in self.running().items():
            if job_id in job_ids:
                control.give_back = True
                control.cancel.set()

    def run_job_id(self, job_id: int) -> str:
        """Run one job the task engine handed over, on this thread: ``ran``; ``later`` (not due yet, or
        another job of its key runs: handed to the engine again for then); or ``gone`` (finished, or
        running in a live runner elsewhere; if that one vanishes the leader hands the job over again)."""
        job = job_table.claim(self.ctx.catalog, self.owner, [], self.lease, job_id=job_id)
        if job is not None:
            self._run(job)
            return "ran"
        with self.ctx.catalog.read() as conn:
            due = job_table.queued_until(conn, job_id)
        if due is None:
            return "gone"
        job_table.dispatch(self.ctx.catalog, job_id, max(due, now_utc() + timedelta(seconds=1)))
        return "later"

    def _retry(self, job: Job, error: str) -> None:
        job_table.retry_later(self.ctx.catalog, self.owner, job.id, error, job.attempts, job.max_attempts)


# -- the API's and the CLI's view ------------------------------------------------------------------------
def list_jobs(
    ctx: Context,
    state: str | None = None,
    kind: str | None = None,
    source: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    from mediamesh.services.sources import find_source

    with ctx.catalog.read() as conn:
        source_id = find_source(conn, source).id if source is not None else None
        return job_table.list_jobs(conn, state, kind, source_id, limit)


def get_job(ctx: Context, job_id: int) -> dict[str, Any]:
    with ctx.catalog.read() as conn:
        found = job_table.get_job(conn, job_id)
    if found is None:
        raise NotFound(f"no job {job_id}")
    return found


def cancel_job(ctx: Context, job_id: int) -> dict[str, Any]:
    """Cancel a queued job now, a running one at its next step (in whichever process runs it)."""
    state = job_table.request_cancel(ctx.catalog, job_id)
    if state is None:
        raise NotFound(f"no job {job_id}")
    if state not in job_table.ACTIVE:
        raise Conflict(f"job {job_id} is not queued or running (it is {state})")
    return get_job(ctx, job_id)


def server_runs(ctx: Context, kind: str, source_id: int | None = None) -> bool:
    """Is a job runner alive that does jobs of this kind (for this source: a scan worker serving other
    sources only would never take them)?"""
    with ctx.catalog.read() as conn:
        return any(
            source_id is None or w["sources"] is None or source_id in w["sources"]
            for w in job_table.live_workers(conn, kind)
        )


def list_workers(ctx: Context) -> dict[str, Any]:
    """Every live job runner (servers, scan workers) with its heartbeat, the sources it serves and the
    jobs it holds; and, per source, who runs its jobs (a scan worker, else the servers)."""
    with ctx.catalog.read() as conn:
        runners = job_table.live_workers(conn)
        names = {int(r.id): str(r.name) for r in conn.execute(select(sources.c.id, sources.c.name))}
    served = job_table.served_by(runners)
    for runner in runners:
        ids = runner.pop("sources")
        runner["sources"] = None if ids is None else [names.get(i, str(i)) for i in ids]
        for job in runner["jobs"]:
            job["source"] = names.get(job.pop("source_id"))
    return {
        "engine": "procrastinate" if ctx.catalog.dispatch else "embedded",
        "workers": runners,
        "sources": {
            name: {"served_by": served.get(source_id, []) or ["server"]}
            for source_id, name in sorted(names.items())
        },
    }
