"""The app factory. The full LAN API (tokens, sources, media) builds on this."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from mediamesh import __version__
from mediamesh.api import errors
from mediamesh.api.deps import no_unknown_query, run_query
from mediamesh.api.limits import RequestLimits
from mediamesh.api.metrics import CONTENT_TYPE, Metrics, MetricsMiddleware
from mediamesh.api.responses import FastJSON
from mediamesh.api.routes import catalog, projects, sources, tokens
from mediamesh.api.schemas import COMMON
from mediamesh.api.schemas import errors as error_responses
from mediamesh.api.security import AllowlistMiddleware, FailedLogins, Read, TokenCache
from mediamesh.catalog.scans import recover_abandoned
from mediamesh.config import Settings
from mediamesh.context import create_context
from mediamesh.services.content import BackendPool
from mediamesh.services.lifecycle import SourceManager
from mediamesh.services.scan_runner import ScanRunner
from mediamesh.services.scheduler import Scheduler
from mediamesh.ui import pages as ui_pages


def create_app(settings: Settings) -> FastAPI:
    ctx = create_context(settings)  # opens and migrates the catalog before the first request
    manager = SourceManager(ctx, settings.health_interval)
    scans = ScanRunner(ctx, settings.max_scans)
    scheduler = Scheduler(ctx, scans)
    content_backends = BackendPool(ctx)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        recover_abandoned(ctx.catalog)
        sources_file = settings.sources_file or settings.data_dir / "sources.yaml"
        declared = sources_file if settings.sources_file is not None or sources_file.exists() else None
        # In the background: applying sources.yaml and restoring every source; start-up never waits.
        manager.start(declared)
        scheduler.start()
        ui_pages.warm_up(ctx)
        yield
        scheduler.stop()
        scans.stop()  # running scans are cancelled: they end interrupted and resume on the next scan
        manager.stop()
        content_backends.close()
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
    app.state.scheduler = scheduler
    app.state.content_backends = content_backends
    metrics = Metrics(ctx, scans)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestLimits)  # bodies, authentication before them, streams per client
    app.add_middleware(AllowlistMiddleware, allow=settings.allow, hosts=settings.host_names)
    errors.install(app, html=ui_pages.error_page)
    app.include_router(sources.router)
    app.include_router(tokens.router)
    app.include_router(catalog.router)
    app.include_router(projects.router)
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
