"""The composition root of ``mediamesh serve``: the context, the job runner, the source monitor and the
schedule, and the ASGI app that puts the API (``api/``) and the web UI (``ui/``) on them."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from mediamesh import __version__
from mediamesh.api.metrics import CONTENT_TYPE, Metrics, MetricsMiddleware
from mediamesh.api.responses import FastJSON
from mediamesh.api.routes import catalog, discovery, events, jobs, projects, sources, tokens, webhooks
from mediamesh.api.schemas import COMMON
from mediamesh.api.schemas import errors as error_responses
from mediamesh.config import Settings
from mediamesh.context import Context, create_context
from mediamesh.dav import routes as dav
from mediamesh.services.discovery import Discovery
from mediamesh.services.duties import LeaderDuties
from mediamesh.services.engine import EngineWorker, engine_runner, server_queues
from mediamesh.services.events import EventHub
from mediamesh.services.jobs import JobRunner, Lane
from mediamesh.services.leader import Leadership
from mediamesh.services.lifecycle import recover_abandoned
from mediamesh.services.scan_runner import ScanQueue
from mediamesh.services.scans import HANDLERS
from mediamesh.ui import pages as ui_pages
from mediamesh.web import errors
from mediamesh.web.deps import no_unknown_query, run_query
from mediamesh.web.limits import RequestLimits
from mediamesh.web.security import AllowlistMiddleware, FailedLogins, Read, TokenCache


def job_runner(ctx: Context) -> JobRunner:
    """Embedded mode: scans on ``max_scans`` threads; enrichment on one of its own, so that it never holds
    back a scan. Scale-out mode: no threads of its own; the task engine hands jobs over (EngineWorker)."""
    if ctx.settings.uses_task_engine:
        return engine_runner(ctx, socket.gethostname(), "server")
    lanes = [Lane("scan", ("scan",), ctx.settings.max_scans), Lane("enrich", ("extract",), 1)]
    return JobRunner(ctx, HANDLERS, lanes)


def create_app(settings: Settings) -> FastAPI:
    ctx = create_context(settings)  # opens and migrates the catalog before the first request
    runner = job_runner(ctx)
    engine = (
        EngineWorker(
            ctx,
            runner,
            lambda: server_queues(ctx),
            concurrency=settings.max_scans + 1,  # + enrichment beside the scans
            name=f"server@{socket.gethostname()}",
        )
        if settings.uses_task_engine
        else None
    )
    scans = ScanQueue(ctx, runner)
    hub = EventHub(ctx)
    sources_file = settings.sources_file or settings.data_dir / "sources.yaml"
    declared = sources_file if settings.sources_file is not None or sources_file.exists() else None
    duties = LeaderDuties(ctx, scans, runner, declared)
    hub.listeners.append(duties.wake_sender)
    leadership = Leadership(ctx.catalog, duties.make)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        recover_abandoned(ctx)
        runner.start()  # jobs a previous run left (even after kill -9) are taken up again
        if engine is not None:
            engine.start()
        hub.start()
        # The schedule, health probes (and sources.yaml, and restoring every source, in the background:
        # start-up never waits), webhooks and watches: in one server only, the leader.
        leadership.start()
        ui_pages.warm_up(ctx)
        yield
        leadership.stop()
        hub.stop()
        if engine is not None:
            engine.stop()
        runner.stop()  # running jobs are cancelled and given back to the queue: resumed at the next start
        ctx.close()

    app = FastAPI(
        title="mediamesh",
        version=__version__,
        lifespan=lifespan,
        openapi_url=None,  # served below, behind a token; the reference page is the UI's (/api/docs)
        docs_url=None,
        redoc_url=None,
        responses=COMMON,
        dependencies=[Depends(no_unknown_query)],
    )
    app.state.ctx = ctx
    app.state.failed_logins = FailedLogins()
    app.state.token_cache = TokenCache()
    app.state.scans = scans
    app.state.jobs = runner
    app.state.leadership = leadership
    app.state.discovery = Discovery(ctx)
    app.state.events = hub
    metrics = Metrics(ctx, scans)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestLimits)  # bodies, authentication before them, streams per client
    app.add_middleware(AllowlistMiddleware, allow=settings.allow, hosts=settings.host_names)
    errors.install(app, html=ui_pages.error_page)
    app.include_router(sources.router)
    app.include_router(sources.mounts_router)
    app.include_router(tokens.router)
    app.include_router(catalog.router)
    app.include_router(projects.router)
    app.include_router(jobs.router)
    app.include_router(jobs.workers_router)
    app.include_router(discovery.router)
    app.include_router(events.router)
    app.include_router(webhooks.router)
    dav.install(app)  # the read-only WebDAV view at /dav/
    ui_pages.install(app)  # the web UI at /, on the same services

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=FastJSON,  # errors are JSON; the metrics themselves are text (documented below)
        responses={
            200: {
                "content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
                "description": "Prometheus text",
            },
            **error_responses(401),
        },
    )
    async def prometheus(request: Request, _: Read) -> PlainTextResponse:
        """Prometheus metrics (a read token is needed, like the API)."""
        body = await run_query(request, metrics.render)
        return PlainTextResponse(body, media_type=CONTENT_TYPE)

    @app.get("/api/v1/openapi.json", include_in_schema=False)
    async def openapi(_: Read) -> JSONResponse:
        """The OpenAPI schema (a read token or a session: the routes it lists are no one else's business)."""
        return JSONResponse(app.openapi())

    @app.get("/api/v1/health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness: no token needed."""
        return {"status": "ok", "version": __version__}

    return app
