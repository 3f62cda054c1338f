"""Scans as the API, the UI and the schedule ask for them: ``scan`` jobs in the durable queue.

At most ``max_scans`` run at once in this server (the runner's scan lane), one per source (jobs of one
key never run together; the scan records refuse a second, also across processes); the rest wait in
order. A running scan is cancellable from any process; a shutdown gives it back to the queue, and the next
start resumes it (a scan resumes where its committed batches end).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from mediamesh.backends.base import InvalidPathError, clean_relpath
from mediamesh.catalog import jobs as job_table
from mediamesh.catalog.schema import jobs
from mediamesh.catalog.times import iso
from mediamesh.context import Context
from mediamesh.errors import Conflict, InvalidInput, NotFound, from_code
from mediamesh.services.jobs import JobRunner
from mediamesh.services.scans import get_scan, merge_scan_payloads
from mediamesh.services.sources import find_source

#: Scans the server queues by itself; one asked for by a person takes their place (see start).
AUTOMATIC = ("watch", "settle", "reconcile")
#: How long ``start`` waits for a free slot to pick the scan up before answering "queued".
START_WAIT = 5.0


class ScanQueue:
    def __init__(self, ctx: Context, runner: JobRunner | None = None) -> None:
        self.ctx = ctx
        self.runner = runner

    def start(
        self,
        id_or_name: str,
        path: str = "",
        confirm_missing: bool = False,
        trigger: str = "api",
        wait: float | None = None,
    ) -> dict[str, Any]:
        """Queue a scan and, when a slot is free, return its record once it runs (else the queued job);
        raises why it cannot start (unknown or unmounted source, already running or queued). ``wait``:
        how long to wait for a slot (START_WAIT by default; the scheduler does not wait)."""
        try:
            path = clean_relpath(path)
        except InvalidPathError as exc:
            raise InvalidInput(f"invalid path {path!r}: {exc}") from None
        with self.ctx.catalog.read() as conn:
            row = find_source(conn, id_or_name)
        if not row.enabled:
            raise InvalidInput(f"source {row.name!r} is unmounted; 'mediamesh source mount {row.name}' first")
        payload: dict[str, Any] = {"path": path, "confirm_missing": confirm_missing}
        payload = self._absorb_automatic(row.id, payload)
        try:
            job_id = job_table.enqueue(
                self.ctx.catalog,
                "scan",
                payload,
                key=f"scan:{row.id}",
                source_id=row.id,
                trigger=trigger,
                exclusive=True,
                max_attempts=3,
            )
        except job_table.AlreadyQueued:
            raise Conflict(f"a scan of {row.name!r} is already running or queued") from None
        if self.runner is not None:
            self.runner.wake()
        deadline = time.monotonic() + (START_WAIT if wait is None else wait)
        while True:
            with self.ctx.catalog.read() as conn:
                job = job_table.get_job(conn, job_id)
            assert job is not None
            scan_id = job["progress"].get("scan_id")
            if scan_id is not None:
                return {**get_scan(self.ctx, int(scan_id)), "job": job_id}
            if job["state"] in job_table.FINISHED or (job["state"] == "queued" and job["error"]):
                # It ended, or was put back for a retry, before a scan record existed: say why, now.
                job_table.request_cancel(self.ctx.catalog, job_id)
                message = job["error"] or f"the scan of {row.name!r} did not start; see the server log"
                code = (job["result"] or {}).get("error_code") if isinstance(job["result"], dict) else None
                raise from_code(code, message) if code else Conflict(message)
            if job["state"] == "queued" and (self.runner is None or time.monotonic() > deadline):
                return self._queued(job)
            if time.monotonic() > deadline + 30:  # claimed but not started: report it as it is
                return self._queued(job)
            time.sleep(0.02)

    def _absorb_automatic(self, source_id: int, payload: dict[str, Any]) -> dict[str, Any]:
        """A scan asked for by someone takes the place of one the server queued by itself (after a change,
        a settle wait or a reconcile): that one is dropped and its folders join the new scan, instead of
        the person hearing "already queued"."""
        with self.ctx.catalog.read() as conn:
            active = conn.execute(
                select(jobs.c.id, jobs.c.payload, jobs.c.state, jobs.c.trigger).where(
                    jobs.c.key == f"scan:{source_id}", jobs.c.state.in_(("queued", "running"))
                )
            ).all()
        found = next((j for j in active if j.state == "queued" and j.trigger in AUTOMATIC), None)
        if any(j.state == "running" for j in active):
            return payload  # refused as "already running" below; the waiting one keeps its folders
        if found is None or job_table.request_cancel(self.ctx.catalog, found.id) != "queued":
            return payload
        return {
            **merge_scan_payloads(dict(found.payload or {}), payload),
            "confirm_missing": payload["confirm_missing"],
        }

    def _queued(self, job: dict[str, Any], position: int | None = None) -> dict[str, Any]:
        if position is None:
            with self.ctx.catalog.read() as conn:
                position = job_table.queued_position(conn, job["id"]) if job["state"] == "queued" else 0
        return {
            "id": None,
            "job": job["id"],
            "source": job["source"],
            "path": job["payload"].get("path", ""),
            "status": "queued",
            "trigger": job["trigger"],
            "queued_at": job["created_at"],
            "position": position,
        }

    def queued(self) -> list[dict[str, Any]]:
        """Scans waiting for a slot, the next first."""
        with self.ctx.catalog.read() as conn:
            waiting = sorted(
                job_table.list_jobs(conn, state="queued", kind="scan", limit=1000), key=lambda j: j["id"]
            )
        return [self._queued(j, i) for i, j in enumerate(waiting, 1)]

    def running_scan_ids(self) -> list[int]:
        """Scans running in this server."""
        if self.runner is None:
            return []
        return [
            int(c.values["scan_id"])
            for c in self.runner.running().values()
            if c.job.kind == "scan" and "scan_id" in c.values
        ]

    def cancel(self, scan_id: int) -> dict[str, Any]:
        """Stop a running scan, in this process or any other that runs jobs; it ends ``interrupted`` and
        the next scan resumes it."""
        scan = get_scan(self.ctx, scan_id)  # NotFound for an unknown id
        if scan["status"] != "running":
            raise Conflict(f"scan {scan_id} is not running (it is {scan['status']})")
        job_id = self._job_of(scan_id)
        if job_id is None:
            raise Conflict(f"scan {scan_id} runs in another process (a CLI scan); stop it there (Ctrl-C)")
        job_table.request_cancel(self.ctx.catalog, job_id)
        if self.runner is not None:
            control = self.runner.running().get(job_id)
            if control is not None:
                control.cancel.set()  # at once here; another process hears it with its next lease renewal
        return get_scan(self.ctx, scan_id)

    def _job_of(self, scan_id: int) -> int | None:
        with self.ctx.catalog.read() as conn:
            rows = conn.execute(
                select(jobs.c.id, jobs.c.progress).where(jobs.c.kind == "scan", jobs.c.state == "running")
            ).all()
        return next((r.id for r in rows if (r.progress or {}).get("scan_id") == scan_id), None)

    def unqueue(self, id_or_name: str) -> dict[str, Any]:
        """Drop a queued (not yet running) scan of a source."""
        with self.ctx.catalog.read() as conn:
            row = find_source(conn, id_or_name)
            found = conn.execute(
                select(jobs.c.id).where(jobs.c.key == f"scan:{row.id}", jobs.c.state == "queued")
            ).first()
        if found is None or job_table.request_cancel(self.ctx.catalog, found.id) != "queued":
            raise NotFound(f"no queued scan of {id_or_name!r}")
        return {
            "id": None,
            "job": found.id,
            "source": row.name,
            "status": "cancelled",
            "queued_at": iso(None),
            "position": 0,
        }
