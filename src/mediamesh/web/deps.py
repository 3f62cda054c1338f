"""Typed dependencies shared by the routes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Path, Request

from mediamesh.context import Context
from mediamesh.errors import InvalidInput


async def get_ctx(request: Request) -> Context:  # async: no thread hop for a lookup
    ctx: Context = request.app.state.ctx
    return ctx


Ctx = Annotated[Context, Depends(get_ctx)]
#: A row id in a path: bounded, so that no id can overflow a database integer.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


T = TypeVar("T")
#: Catalog queries of the API run on at most this many threads. More threads only fight over the GIL:
#: measured, 40 threads answered a third as many listing requests per second as two.
CATALOG_THREADS = 2


#: Threads that may wait on sources at once (opening and reading content). Apart from the catalog's and
#: the server's default pool, so that a hung NAS holding all of them delays only more reads from sources.
SOURCE_THREADS = 32


def _limiter(request: Request, name: str, size: int) -> anyio.CapacityLimiter:
    limiter: anyio.CapacityLimiter | None = getattr(request.app.state, name, None)
    if limiter is None:
        limiter = anyio.CapacityLimiter(size)
        setattr(request.app.state, name, limiter)
    return limiter


async def run_query(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """Run a catalog query off the event loop, on the API's few catalog threads."""
    return await anyio.to_thread.run_sync(
        fn, *args, limiter=_limiter(request, "catalog_limiter", CATALOG_THREADS)
    )


def source_limiter(request: Request) -> anyio.CapacityLimiter:
    return _limiter(request, "source_limiter", SOURCE_THREADS)


def _query_names(dependant: Any) -> frozenset[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


async def no_unknown_query(request: Request) -> None:
    """Refuse query parameters a route does not take: ``?sourec=nas19`` must not list everything."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    # Worked out once per route and kept on it: its dependants do not change once the app is built.
    known: frozenset[str] | None = getattr(route, "mediamesh_query_names", None)
    if known is None:
        known = _query_names(dependant)
        setattr(route, "mediamesh_query_names", known)  # noqa: B010 - an attribute of our own on the route
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise InvalidInput(f"unknown query parameter {', '.join(unknown)} (this route takes: {takes})")
