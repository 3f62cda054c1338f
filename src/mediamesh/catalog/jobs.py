"""The ``jobs`` table: durable work claimed under a lease.

A job is ``queued`` until a runner claims it: atomically, in one write transaction (``BEGIN IMMEDIATE``
on SQLite, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two runners never take the same job. The claim
sets a lease that the runner's timer renews (never the job's own progress: a scan hashing one large file
for minutes still holds its lease). A job whose lease ran out, or whose runner on this host is gone, is
claimed again; a job that fails is retried with backoff until ``max_attempts``. Jobs with the same
``key`` (``scan:3``) never run at once and at most one of them waits.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from mediamesh.catalog import engine as task_engine
from mediamesh.catalog.database import Catalog
from mediamesh.catalog.processes import process_state
from mediamesh.catalog.schema import jobs, sources, workers
from mediamesh.catalog.times import aware, iso, now_utc

#: A running job whose lease is this old is taken as abandoned (its runner renews it every LEASE / 4).
LEASE = timedelta(seconds=60)
ACTIVE = ("queued", "running")
FINISHED = ("completed", "failed", "cancelled")


def new_owner() -> str:
    """A runner's name: host, pid and a random part (a restarted process never inherits a lease)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_alive(owner: str | None) -> bool | None:
    """For a runner on this host: is its process alive? None when it runs elsewhere (trust the lease)."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    state = process_state(host, int(pid_text) if pid_text.isdecimal() else None)
    return None if state == "elsewhere" else state != "gone"


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    key: str | None
    source_id: int | None
    payload: dict[str, Any]
    attempts: int
    trigger: str
    max_attempts: int = 1


class AlreadyQueued(Exception):
    """A job with this key is queued already (``job_id``) or running (``running``)."""

    def __init__(self, job_id: int, running: bool) -> None:
        super().__init__(job_id)
        self.job_id = job_id
        self.running = running


def enqueue(
    catalog: Catalog,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    key: str | None = None,
    source_id: int | None = None,
    priority: int = 0,
    max_attempts: int = 3,
    trigger: str = "api",
    exclusive: bool = False,
    delay: timedelta | None = None,
    merge: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None,
) -> int:
    """Queue a job; returns its id. With ``key``, a job already queued under it is kept instead (its id is
    returned), its payload made ``merge(queued, payload)`` when given (two changes of one source become
    one scan of both folders); ``exclusive`` also refuses while one runs (AlreadyQueued)."""
    now = now_utc()
    with catalog.write(bump=False) as conn:  # no cached query reads jobs
        if key is not None:
            active = conn.execute(
                select(jobs.c.id, jobs.c.state)
                .where(jobs.c.key == key, jobs.c.state.in_(ACTIVE))
                .order_by(jobs.c.id)
            ).all()
            queued = next((r.id for r in active if r.state == "queued"), None)
            running = next((r.id for r in active if r.state == "running"), None)
            if exclusive and (queued or running):
                raise AlreadyQueued(queued or running or 0, running is not None)
            if queued is not None:
                _merge_into(conn, int(queued), payload or {}, merge)
                return int(queued)
        try:
            with conn.begin_nested():
                result = conn.execute(
                    insert(jobs).values(
                        kind=kind,
                        key=key,
                        source_id=source_id,
                        payload=payload or {},
                        state="queued",
                        priority=priority,
                        attempts=0,
                        max_attempts=max_attempts,
                        run_after=now + (delay or timedelta(0)),
                        cancel_requested=False,
                        created_at=now,
                        trigger=trigger,
                        progress={},
                    )
                )
        except IntegrityError:  # queued meanwhile by another process (the unique index on queued keys)
            found = conn.execute(select(jobs.c.id).where(jobs.c.key == key, jobs.c.state == "queued")).first()
            if found is None:
                raise
            if exclusive:
                raise AlreadyQueued(int(found.id), False) from None
            _merge_into(conn, int(found.id), payload or {}, merge)
            return int(found.id)
        pk = result.inserted_primary_key
        assert pk is not None
        if catalog.dispatch:
            task_engine.defer(conn, int(pk[0]), source_id, priority, now + (delay or timedelta(0)))
        return int(pk[0])


def dispatch(catalog: Catalog, job_id: int, at: datetime | None = None) -> None:
    """Hand a queued job to the task engine again (its task found it not due yet: a backoff, or another
    job of its key running). Nothing to do in the embedded mode, whose runner polls the table."""
    if not catalog.dispatch:
        return
    with catalog.write(bump=False) as conn:
        _hand_over(conn, job_id, at)


def _hand_over(conn: Connection, job_id: int, at: datetime | None = None) -> None:
    """Defer an active job to the task engine, in the caller's transaction, for ``at`` (by default when
    it is due)."""
    row = conn.execute(
        select(jobs.c.source_id, jobs.c.priority, jobs.c.run_after).where(
            jobs.c.id == job_id, jobs.c.state.in_(ACTIVE)
        )
    ).first()
    if row is not None:
        task_engine.defer(conn, job_id, row.source_id, row.priority, at or row.run_after)


def dispatch_orphans(catalog: Catalog) -> int:
    """Jobs the task engine does not know of (see catalog/engine.py), handed to it; returns how many."""
    if not catalog.dispatch:
        return 0
    with catalog.write(bump=False) as conn:
        return task_engine.dispatch_orphans(conn)


def _merge_into(
    conn: Connection,
    job_id: int,
    payload: dict[str, Any],
    merge: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None,
) -> None:
    if merge is None:
        return
    old = conn.execute(select(jobs.c.payload).where(jobs.c.id == job_id, jobs.c.state == "queued")).scalar()
    if old is not None:
        merged = merge(dict(old), payload)
        if merged != old:
            conn.execute(
                update(jobs).where(jobs.c.id == job_id, jobs.c.state == "queued").values(payload=merged)
            )


def claim(
    catalog: Catalog, owner: str, kinds: list[str], lease: timedelta = LEASE, job_id: int | None = None
) -> Job | None:
    """Take the next job this runner can do, or None: a queued job that is due, or a running one whose
    runner is gone. Never one whose key has another job running."""
    now = now_utc()
    other = jobs.alias("other")
    busy_key = exists().where(
        other.c.key == jobs.c.key,
        other.c.state == "running",
        other.c.id != jobs.c.id,
        other.c.lease_expires_at > now,
    )
    mine = jobs.c.kind.in_(kinds) if job_id is None else jobs.c.id == job_id
    due = or_(
        and_(jobs.c.state == "queued", jobs.c.run_after <= now),
        and_(jobs.c.state == "running", jobs.c.lease_expires_at <= now),
    )
    with catalog.read() as conn:  # most polls find nothing: they take no write lock
        ready = conn.execute(select(jobs.c.id).where(mine, due).limit(1)).first() is not None
        if not ready:
            owners = conn.execute(select(jobs.c.lease_owner).where(jobs.c.state == "running")).scalars()
            if all(owner_alive(owner) is not False for owner in owners):
                return None
    with catalog.write(bump=False) as conn:  # no cached query reads jobs
        _release_dead_runners(conn, now)
        query = (
            select(jobs.c.id, jobs.c.state, jobs.c.attempts)
            .where(mine, due, or_(jobs.c.key.is_(None), ~busy_key))
            .order_by(jobs.c.priority.desc(), jobs.c.id)
            .limit(1)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite's BEGIN IMMEDIATE already excludes others
        )
        row = conn.execute(query).first()
        if row is None:
            return None
        conn.execute(
            update(jobs)
            .where(jobs.c.id == row.id)
            .values(
                state="running",
                lease_owner=owner,
                lease_expires_at=now + lease,
                heartbeat_at=now,
                started_at=now,
                attempts=jobs.c.attempts + 1,
                error=None,
            )
        )
        job = conn.execute(select(jobs).where(jobs.c.id == row.id)).one()
        return Job(
            job.id,
            job.kind,
            job.key,
            job.source_id,
            dict(job.payload or {}),
            job.attempts,
            job.trigger,
            job.max_attempts,
        )


#: A queued job whose key is busy is looked at again at the latest after this (the running one may end
#: long before its lease would).
BUSY_RECHECK = timedelta(seconds=15)


def queued_until(conn: Connection, job_id: int) -> datetime | None:
    """For a queued job: when it can run (its backoff, or the end of the lease of the job of its key that
    runs, at most BUSY_RECHECK away); None when it is not queued."""
    row = conn.execute(select(jobs.c.state, jobs.c.key, jobs.c.run_after).where(jobs.c.id == job_id)).first()
    if row is None or row.state != "queued":
        return None
    due = aware(row.run_after) or now_utc()
    if row.key is not None:
        busy = conn.execute(
            select(func.max(jobs.c.lease_expires_at)).where(
                jobs.c.key == row.key, jobs.c.state == "running", jobs.c.id != job_id
            )
        ).scalar()
        if busy is not None:
            due = max(due, min(aware(busy) or due, now_utc() + BUSY_RECHECK))
    return due


def _release_dead_runners(conn: Connection, now: datetime) -> None:
    """Running jobs of a runner on this host whose process is gone (kill -9, a crash): due at once."""
    for row in conn.execute(select(jobs.c.id, jobs.c.lease_owner).where(jobs.c.state == "running")).all():
        if owner_alive(row.lease_owner) is False:
            conn.execute(update(jobs).where(jobs.c.id == row.id).values(lease_expires_at=now))


def renew(catalog: Catalog, owner: str, job_ids: list[int], lease: timedelta = LEASE) -> set[int]:
    """Extend the leases this runner holds; returns the jobs among them whose cancellation was asked."""
    if not job_ids:
        return set()
    now = now_utc()
    with catalog.write(bump=False) as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id.in_(job_ids), jobs.c.lease_owner == owner, jobs.c.state == "running")
            .values(lease_expires_at=now + lease, heartbeat_at=now)
        )
        return set(
            conn.execute(
                select(jobs.c.id).where(jobs.c.id.in_(job_ids), jobs.c.cancel_requested.is_(True))
            ).scalars()
        )


def save_job_progress(catalog: Catalog, job_id: int, progress: dict[str, Any]) -> None:
    with catalog.write(bump=False) as conn:
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(progress=progress))


def finish(
    catalog: Catalog, owner: str, job_id: int, state: str, result: Any = None, error: str | None = None
) -> None:
    """End a job this runner holds (completed, failed or cancelled)."""
    with catalog.write(bump=False) as conn:  # no cached query reads jobs
        if catalog.dispatch:  # the job of the same key that waited for this one may run now
            _dispatch_next_of_key(conn, job_id)
        conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.lease_owner == owner)
            .values(
                state=state,
                finished_at=now_utc(),
                result=result,
                error=error,
                lease_owner=None,
                lease_expires_at=None,
            )
        )


def _dispatch_next_of_key(conn: Connection, job_id: int) -> None:
    key = conn.execute(select(jobs.c.key).where(jobs.c.id == job_id)).scalar()
    if key is None:
        return
    waiting = conn.execute(select(jobs.c.id).where(jobs.c.key == key, jobs.c.state == "queued")).scalar()
    if waiting is not None:
        _hand_over(conn, int(waiting))


def retry_later(
    catalog: Catalog, owner: str, job_id: int, error: str, attempts: int, max_attempts: int
) -> bool:
    """After a failure: queue the job again with backoff (True), or fail it for good (False)."""
    if attempts >= max_attempts:
        finish(catalog, owner, job_id, "failed", error=error)
        return False
    backoff = timedelta(seconds=min(600, 5 * 4 ** (attempts - 1)))
    release(catalog, owner, job_id, error=error, delay=backoff)
    return True


def release(
    catalog: Catalog,
    owner: str,
    job_id: int,
    error: str | None = None,
    delay: timedelta | None = None,
    count_attempt: bool = True,
) -> None:
    """Give a job back to the queue (a shutdown, a retry). If another job of its key was queued meanwhile,
    that one stays and this one ends: one queued per key."""
    now = now_utc()
    with catalog.write(bump=False) as conn:  # no cached query reads jobs
        row = conn.execute(select(jobs.c.key).where(jobs.c.id == job_id)).first()
        if row is not None and row.key is not None:
            waiting = conn.execute(
                select(jobs.c.id).where(jobs.c.key == row.key, jobs.c.state == "queued")
            ).first()
            if waiting is not None:
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.lease_owner == owner)
                    .values(state="cancelled", finished_at=now, lease_owner=None, error="superseded")
                )
                return
        released = conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.lease_owner == owner)
            .values(
                state="queued",
                run_after=now + (delay or timedelta(0)),
                lease_owner=None,
                lease_expires_at=None,
                error=error,
                attempts=jobs.c.attempts if count_attempt else jobs.c.attempts - 1,
            )
        ).rowcount
        if released and catalog.dispatch:
            _hand_over(conn, job_id)


def request_cancel(catalog: Catalog, job_id: int) -> str | None:
    """Cancel a job: a queued one at once, a running one at its next step (its runner sees the flag with
    its next lease renewal). Returns the state the job had, or None for an unknown job."""
    with catalog.write(bump=False) as conn:  # no cached query reads jobs
        row = conn.execute(select(jobs.c.state).where(jobs.c.id == job_id)).first()
        if row is None:
            return None
        if row.state == "queued":
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == "queued")
                .values(state="cancelled", finished_at=now_utc(), error="cancelled before it started")
            )
        elif row.state == "running":
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(cancel_requested=True))
        return str(row.state)


def public(row: Any, source_name: str | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "key": row.key,
        "source": source_name,
        "state": row.state,
        "trigger": row.trigger,
        "payload": row.payload or {},
        "attempts": row.attempts,
        "max_attempts": row.max_attempts,
        "run_after": iso(row.run_after),
        "created_at": iso(row.created_at),
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "heartbeat_at": iso(row.heartbeat_at),
        "lease_owner": row.lease_owner,
        "lease_expires_at": iso(row.lease_expires_at),
        "cancel_requested": bool(row.cancel_requested),
        "progress": row.progress or {},
        "result": row.result,
        "error": row.error,
    }


def _joined() -> Any:
    return select(jobs, sources.c.name.label("source_name")).outerjoin(
        sources, sources.c.id == jobs.c.source_id
    )


def get_job(conn: Connection, job_id: int) -> dict[str, Any] | None:
    row = conn.execute(_joined().where(jobs.c.id == job_id)).first()
    return public(row, row.source_name) if row is not None else None


def list_jobs(
    conn: Connection,
    state: str | None = None,
    kind: str | None = None,
    source_id: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    query = _joined().order_by(jobs.c.id.desc()).limit(limit)
    if state is not None:
        query = query.where(jobs.c.state == state)
    if kind is not None:
        query = query.where(jobs.c.kind == kind)
    if source_id is not None:
        query = query.where(jobs.c.source_id == source_id)
    return [public(row, row.source_name) for row in conn.execute(query)]


def queued_position(conn: Connection, job_id: int) -> int:
    """1 for the next queued job to run."""
    row = conn.execute(select(jobs.c.priority).where(jobs.c.id == job_id)).first()
    if row is None:
        return 0
    ahead = conn.execute(
        select(func.count())
        .select_from(jobs)
        .where(
            jobs.c.state == "queued",
            or_(jobs.c.priority > row.priority, and_(jobs.c.priority == row.priority, jobs.c.id < job_id)),
        )
    ).scalar_one()
    return int(ahead) + 1


def prune_finished(catalog: Catalog, keep: timedelta = timedelta(days=7)) -> int:
    """Forget finished jobs older than ``keep`` (scans keep their own records)."""
    with catalog.write(bump=False) as conn:
        return int(
            conn.execute(
                delete(jobs).where(jobs.c.state.in_(FINISHED), jobs.c.finished_at < now_utc() - keep)
            ).rowcount
        )


# -- runners ---------------------------------------------------------------------------------------------
def beat_worker(
    catalog: Catalog,
    owner: str,
    kinds: list[str],
    *,
    name: str | None = None,
    role: str = "server",
    source_ids: list[int] | None = None,
) -> None:
    """Record that a runner is alive (the CLI leaves enrichment to a live server; the server leaves the
    sources a worker serves to it); forget runners silent for a day (a kill -9 leaves its row).
    ``source_ids``: the sources it serves, None for every one."""
    now = now_utc()
    host, _, rest = owner.partition(":")
    with catalog.write(bump=False) as conn:
        conn.execute(delete(workers).where(workers.c.heartbeat_at < now - timedelta(days=1)))
        updated = conn.execute(update(workers).where(workers.c.id == owner).values(heartbeat_at=now)).rowcount
        if not updated:
            conn.execute(
                insert(workers).values(
                    id=owner,
                    host=host,
                    pid=int(rest.partition(":")[0]),
                    kinds=kinds,
                    started_at=now,
                    heartbeat_at=now,
                    name=name or host,
                    role=role,
                    sources=source_ids,
                )
            )


def forget_worker(catalog: Catalog, owner: str) -> None:
    with catalog.write(bump=False) as conn:
        conn.execute(delete(workers).where(workers.c.id == owner))


def _fresh(row: Any, now: datetime) -> bool:
    beat = aware(row.heartbeat_at)
    return beat is not None and now - beat < LEASE and owner_alive(row.id) is not False


def live_workers(conn: Connection, kind: str | None = None) -> list[dict[str, Any]]:
    """Runners whose heartbeat is recent (and who do ``kind``, when given), with the jobs they hold."""
    now = now_utc()
    held: dict[str, list[dict[str, Any]]] = {}
    running = select(jobs.c.id, jobs.c.kind, jobs.c.source_id, jobs.c.lease_owner, jobs.c.progress).where(
        jobs.c.state == "running"
    )
    for job in conn.execute(running):
        held.setdefault(job.lease_owner or "", []).append(
            {"id": job.id, "kind": job.kind, "source_id": job.source_id, "progress": job.progress or {}}
        )
    out = []
    for row in conn.execute(select(workers).order_by(workers.c.started_at)):
        if not _fresh(row, now) or (kind is not None and kind not in (row.kinds or [])):
            continue
        out.append(
            {
                "id": row.id,
                "name": row.name or row.host,
                "role": row.role or "server",
                "host": row.host,
                "pid": row.pid,
                "kinds": list(row.kinds or []),
                "sources": None if row.sources is None else [int(s) for s in row.sources],
                "started_at": iso(row.started_at),
                "heartbeat_at": iso(row.heartbeat_at),
                "jobs": held.get(row.id, []),
            }
        )
    return out


def served_sources(conn: Connection) -> dict[int, list[str]]:
    """Sources that live scan workers (``mediamesh worker --source``) serve, with those workers' names:
    the server leaves their jobs to them."""
    return served_by(live_workers(conn))


def served_by(runners: list[dict[str, Any]]) -> dict[int, list[str]]:
    """:func:`served_sources` of runners already read (see live_workers)."""
    served: dict[int, list[str]] = {}
    for worker in runners:
        if worker["role"] == "worker" and worker["sources"] is not None:
            for source_id in worker["sources"]:
                served.setdefault(source_id, []).append(worker["name"])
    return served
