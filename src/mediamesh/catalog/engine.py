"""The task engine's side of the catalog in scale-out mode (PostgreSQL): procrastinate's tables beside ours.

The ``jobs`` table stays the record of every job (what the API, the CLI and the UI show, its progress,
its cancellation, one queued per key). On PostgreSQL each job that becomes due is also handed to
procrastinate, in the same transaction, as a ``mediamesh.run_job`` task on the queue of its source
(``source-3``), so that only workers that reach the source take it; procrastinate does the routing, the
wake-ups (LISTEN/NOTIFY), the worker heartbeats and the stalled-job detection. See services/engine.py.
"""

from __future__ import annotations

from datetime import datetime
from importlib import resources

from sqlalchemy import Connection, inspect, text

from mediamesh.catalog.times import now_utc

#: The task every dispatched job runs as; its one argument is the job's id in our ``jobs`` table.
TASK = "mediamesh.run_job"
#: Jobs of no source (none today) and of sources no dedicated worker serves go here too.
DEFAULT_QUEUE = "mediamesh"


def queue_of(source_id: int | None) -> str:
    """The engine's queue for a source's jobs: a worker serves the queues of the sources it reaches."""
    return DEFAULT_QUEUE if source_id is None else f"source-{source_id}"


def installed(conn: Connection) -> bool:
    return inspect(conn).has_table("procrastinate_jobs")


def install(conn: Connection) -> None:
    """Create procrastinate's schema (its own SQL, as shipped with the pinned release) unless present.
    Called under the migration lock, so two processes starting at once do not both create it."""
    if installed(conn):
        return
    sql = resources.files("procrastinate.sql").joinpath("schema.sql").read_text(encoding="utf-8")
    # Straight to the driver, with no parameters (the script holds '%' signs): psycopg sends it as one
    # query, inside the caller's transaction.
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


_DEFER = text(
    "SELECT procrastinate_defer_jobs_v1(ARRAY[ROW(:queue, :task, :priority, NULL, NULL,"
    " CAST(:args AS jsonb), :at)::procrastinate_job_to_defer_v1])"
)


def defer(conn: Connection, job_id: int, source_id: int | None, priority: int, at: datetime | None) -> None:
    """Hand one of our jobs to the engine, inside the caller's transaction: the job and its task commit
    together or not at all (no job is ever queued that no worker will hear of)."""
    conn.execute(
        _DEFER,
        {
            "queue": queue_of(source_id),
            "task": TASK,
            "priority": priority,
            "args": f'{{"job_id": {int(job_id)}}}',
            "at": at or now_utc(),
        },
    )


#: Our jobs that should be waiting in the engine but are not: queued ones, and running ones whose lease
#: ran out, with no task of theirs to do or being done. Found by the leader's round (a safety net: a job
#: queued while the engine was not installed yet, or one whose holder vanished).
_ORPHANS = text(
    """
    SELECT j.id, j.source_id, j.priority, j.run_after, j.state, j.lease_expires_at FROM jobs j
    WHERE (j.state = 'queued' OR (j.state = 'running' AND j.lease_expires_at < :now))
      AND NOT EXISTS (
        SELECT 1 FROM procrastinate_jobs p
        WHERE p.task_name = :task AND p.status IN ('todo', 'doing')
          AND (p.args ->> 'job_id')::bigint = j.id)
    ORDER BY j.id LIMIT 500
    """
)


def dispatch_orphans(conn: Connection) -> int:
    """Hand every orphaned job (see _ORPHANS) to the engine again; returns how many."""
    rows = conn.execute(_ORPHANS, {"now": now_utc(), "task": TASK}).all()
    for row in rows:
        defer(conn, row.id, row.source_id, row.priority, row.run_after if row.state == "queued" else None)
    return len(rows)
