"""The app factory. The full LAN API (tokens, sources, media) builds on this."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from mediamesh import __version__
from mediamesh.catalog.scans import recover_abandoned
from mediamesh.config import Settings
from mediamesh.context import create_context


def create_app(settings: Settings) -> FastAPI:
    ctx = create_context(settings)  # opens and migrates the catalog before the first request

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        recover_abandoned(ctx.catalog)
        yield
        ctx.close()

    app = FastAPI(
        title="mediamesh",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.ctx = ctx

    @app.get("/api/v1/health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness: no token needed."""
        return {"status": "ok", "version": __version__}

    return app
