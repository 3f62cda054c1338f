"""Scale-out mode: the job handlers run on procrastinate, over the PostgreSQL catalog.

Every process that runs jobs (``mediamesh serve``, each ``mediamesh worker``) runs one procrastinate
worker here, in a thread with its own event loop, on the queues of the sources it serves
(catalog/engine.py). Its one task, ``mediamesh.run_job``, claims the job in our ``jobs`` table and runs
its handler through the same :class:`~mediamesh.services.jobs.JobRunner` as the embedded mode: the lease
(renewed by the runner's timer) is what keeps two processes off one job; procrastinate brings the
routing, LISTEN/NOTIFY wake-ups and worker heartbeats.

Recovery, when a process dies without a word (``kill -9``, a power cut):
- every engine worker looks for stalled tasks of its queues (their worker's heartbeat is older than
  the lease) and hands them back to procrastinate, whose next free worker for that queue takes them and
  resumes the job once its lease has run out;
- the leader (services/leader.py) hands over any job the engine does not know of (``Reconciler``).

A server's queues change while it runs: a source that a live ``mediamesh worker --source`` serves is left
to that worker, and taken back when the worker goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.engine import make_url

from mediamesh.catalog import engine as task_engine
from mediamesh.catalog import jobs as job_table
from mediamesh.catalog.schema import sources
from mediamesh.context import Context
from mediamesh.services.jobs import JobRunner
from mediamesh.services.scans import HANDLERS

if TYPE_CHECKING:
    import procrastinate

log = logging.getLogger(__name__)

#: A worker whose queues must change (a source taken over) looks this often.
RECHECK_SECONDS = 5.0


def libpq_url(sqlalchemy_url: str) -> str:
    """``postgresql+psycopg://u:p@h/db`` as psycopg's pool takes it."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


def make_app(ctx: Context, runner: JobRunner, pool_size: int) -> procrastinate.App:
    """A procrastinate app on the catalog's database with our one task, which runs through ``runner``."""
    import procrastinate

    connector = procrastinate.PsycopgConnector(
        conninfo=libpq_url(ctx.settings.resolved_database_url), min_size=1, max_size=pool_size
    )
    app = procrastinate.App(connector=connector)

    @app.task(name=task_engine.TASK)
    def run_job(job_id: int) -> str:  # a thread of procrastinate's (sync tasks run in threads)
        return runner.run_job_id(int(job_id))

    return app


def engine_runner(ctx: Context, name: str, role: str, source_ids: list[int] | None = None) -> JobRunner:
    """A runner that takes its jobs from the task engine (no polling threads of its own): a server's
    (``role="server"``) or a worker's, serving ``source_ids`` (None: every source)."""
    return JobRunner(ctx, HANDLERS, [], kinds=sorted(HANDLERS), name=name, role=role, source_ids=source_ids)


def worker_queues(source_ids: list[int] | None) -> list[str] | None:
    """What ``mediamesh worker`` serves: its sources' queues, or every queue (None)."""
    return None if source_ids is None else [task_engine.queue_of(i) for i in source_ids]


def server_queues(ctx: Context) -> list[str]:
    """What a server serves: the default queue and every enabled source that no live scan worker serves
    (``mediamesh worker --source``): the server stops scanning those by itself."""
    with ctx.catalog.read() as conn:
        served = job_table.served_sources(conn)
        ids = conn.execute(select(sources.c.id).where(sources.c.enabled.is_(True))).scalars().all()
    return [task_engine.DEFAULT_QUEUE, *(task_engine.queue_of(i) for i in sorted(ids) if i not in served)]


class EngineWorker:
    """A procrastinate worker in a thread of this process, on ``queues()`` (None: every queue)."""

    def __init__(
        self,
        ctx: Context,
        runner: JobRunner,
        queues: Callable[[], list[str] | None],
        concurrency: int,
        name: str,
    ) -> None:
        self.ctx = ctx
        self.runner = runner
        self.queues = queues
        self.concurrency = concurrency
        self.name = name
        lease = runner.lease.total_seconds()
        #: Heartbeats this often; a worker silent for a lease is stalled, its tasks handed over.
        self.heartbeat = max(0.5, lease / 6)
        self.stalled_after = lease
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: Any = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="mediamesh-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        """Give the running jobs back to the queue (the next runner resumes them), then stop."""
        self._stop.set()
        self.runner.give_back(list(self.runner.running()))
        loop, worker = self._loop, self._worker
        if loop is not None and worker is not None:
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile: nothing left to stop
                loop.call_soon_threadsafe(worker.stop)
        if self._thread is not None:
            self._thread.join(timeout)

    def _main(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        from procrastinate.worker import Worker

        backoff = 1.0
        while not self._stop.is_set():
            app = make_app(self.ctx, self.runner, self.concurrency + 4)
            try:
                async with app.open_async():
                    while not self._stop.is_set():
                        queues = await asyncio.to_thread(self.queues)
                        worker = self._worker = Worker(
                            app,
                            queues=queues,
                            name=self.name,
                            concurrency=self.concurrency,
                            install_signal_handlers=False,
                            update_heartbeat_interval=self.heartbeat,
                            stalled_worker_timeout=self.stalled_after,
                            delete_jobs="successful",
                            fetch_job_polling_interval=5.0,
                            abort_job_polling_interval=30.0,
                        )
                        run = asyncio.create_task(worker.run())  # type: ignore[no-untyped-call]
                        await self._watch(app, run, queues)
                        worker.stop()  # type: ignore[no-untyped-call]
                        await run
                        backoff = 1.0
            except Exception:  # the database went away: wait, then connect again (no restart needed)
                log.warning("the task engine stopped; starting again in %.0f s", backoff, exc_info=True)
            self._worker = None
            await asyncio.to_thread(self._stop.wait, backoff)
            backoff = min(30.0, backoff * 2)

    async def _watch(self, app: procrastinate.App, run: asyncio.Task[Any], queues: list[str] | None) -> None:
        """While the worker runs: hand stalled tasks of these queues back, and return when the queues
        this process should serve have changed (its running jobs go back to the queue first)."""
        while not run.done() and not self._stop.is_set():
            await asyncio.wait({run}, timeout=min(RECHECK_SECONDS, self.stalled_after / 2))
            if run.done() or self._stop.is_set():
                return
            await self._sweep(app, queues)
            wanted = await asyncio.to_thread(self.queues)
            if wanted != queues:
                log.info("serving %s now (was %s)", wanted or "every queue", queues or "every queue")
                self.runner.give_back(list(self.runner.running()))
                return

    async def _sweep(self, app: procrastinate.App, queues: list[str] | None) -> None:
        for queue in queues if queues is not None else [None]:
            try:
                stalled = await app.job_manager.get_stalled_jobs(
                    queue=queue, task_name=task_engine.TASK, seconds_since_heartbeat=self.stalled_after
                )
            except Exception:
                log.warning("looking for stalled tasks failed", exc_info=True)
                return
            for job in stalled:
                try:
                    await app.job_manager.retry_job(job)
                    log.info("task %s of a stalled worker handed over (%s)", job.id, job.task_kwargs)
                except Exception:  # another process handed it over first
                    log.debug("task %s was handed over elsewhere", job.id, exc_info=True)


class Reconciler:
    """The leader's safety net: jobs that the engine does not know of (queued before it was installed,
    or held by a process that vanished) are handed to it again, every ``interval`` seconds."""

    def __init__(self, ctx: Context, interval: float = 30.0) -> None:
        self.ctx = ctx
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mediamesh-reconcile", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def round(self) -> int:
        return job_table.dispatch_orphans(self.ctx.catalog)

    def _run(self) -> None:
        while True:
            try:
                handed = self.round()
                if handed:
                    log.info("%d job(s) handed to the task engine again", handed)
            except Exception:
                log.warning("reconciling jobs with the task engine failed", exc_info=True)
            if self._stop.wait(self.interval):
                return
