"""``/api/v1/jobs``: the durable work queue (scans, enrichment), the same service as ``mediamesh jobs``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from mediamesh.api.schemas import AUTHENTICATED
from mediamesh.services import jobs as job_svc
from mediamesh.web.deps import Ctx, RowId
from mediamesh.web.security import Read, Write

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], responses=AUTHENTICATED)


@router.get("")
def list_jobs(
    ctx: Ctx,
    _: Read,
    state: Annotated[str | None, Query(pattern="^(queued|running|completed|failed|cancelled)$")] = None,
    kind: Annotated[str | None, Query(pattern="^[a-z_]{1,32}$")] = None,
    source: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Jobs, newest first: kind, state, attempts, lease holder and heartbeat, progress, result or error."""
    data = job_svc.list_jobs(ctx, state, kind, source, limit)
    return {"data": data, "count": len(data)}


@router.get("/{job_id}")
def show_job(job_id: RowId, ctx: Ctx, _: Read) -> dict[str, Any]:
    return job_svc.get_job(ctx, job_id)


@router.post("/{job_id}/cancel")
def cancel_job(job_id: RowId, request: Request, ctx: Ctx, _: Write) -> dict[str, Any]:
    """Cancel a queued job now, or a running one at its next step (in whichever process runs it)."""
    job = job_svc.cancel_job(ctx, job_id)
    control = request.app.state.jobs.running().get(job_id)
    if control is not None:
        control.cancel.set()  # runs here: stop at once rather than at the next lease renewal
    return job


workers_router = APIRouter(prefix="/api/v1/workers", tags=["jobs"], responses=AUTHENTICATED)


@workers_router.get("")
def list_workers(ctx: Ctx, _: Read) -> dict[str, Any]:
    """The job runners alive now (servers and ``mediamesh worker`` processes): name, role, host,
    heartbeat, the sources each serves and the jobs it runs; per source, who runs its jobs. ``engine`` is
    ``embedded`` (SQLite: the server's own threads) or ``procrastinate`` (PostgreSQL, docs/scale-out.md)."""
    return job_svc.list_workers(ctx)
