"""Typed dependencies shared by the routes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Request

from mediamesh.context import Context


async def get_ctx(request: Request) -> Context:  # async: no thread hop for a lookup
    ctx: Context = request.app.state.ctx
    return ctx


Ctx = Annotated[Context, Depends(get_ctx)]


T = TypeVar("T")
#: Catalog queries of the API run on at most this many threads. More threads only fight over the GIL:
#: measured, 40 threads answered a third as many listing requests per second as two.
CATALOG_THREADS = 2


async def run_query(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """Run a catalog query off the event loop, on the API's few catalog threads."""
    limiter: anyio.CapacityLimiter | None = getattr(request.app.state, "catalog_limiter", None)
    if limiter is None:
        limiter = request.app.state.catalog_limiter = anyio.CapacityLimiter(CATALOG_THREADS)
    return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)
