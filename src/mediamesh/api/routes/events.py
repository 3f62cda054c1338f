"""``/api/v1/events``: what changes in the catalog, as it happens (Server-Sent Events), and ``/recent``.

A stream starts at the newest event, or after ``Last-Event-ID`` (what a browser's EventSource sends when
it reconnects) or ``?after=``: nothing is missed across a reconnect while the log still holds it (a
week). Each message is ``id: N`` and ``data: {"id", "type", "at", "data"}``; a ``gap`` event says that
events were pruned before the client caught up, a ``behind`` event that the client read too slowly and
should reconnect. A comment every 15 s keeps proxies from closing an idle stream; the stream ends when
the token stops working (revoked, expired, signed out).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from mediamesh.api.schemas import AUTHENTICATED
from mediamesh.catalog.events import Event
from mediamesh.services import events as event_svc
from mediamesh.web.deps import Ctx, run_query
from mediamesh.web.security import Read, authenticate, basic_or_bearer

router = APIRouter(prefix="/api/v1/events", tags=["events"], responses=AUTHENTICATED)

KEEPALIVE = 15.0
#: How often a stream checks that its token still works.
RECHECK = 30.0
Types = Annotated[
    str | None,
    Query(
        max_length=500,
        description="Types or prefixes, comma-separated: media.added,scan.*",
        examples=["media.*"],
    ),
]


def _message(event: Event) -> bytes:
    return b"id: %d\ndata: %s\n\n" % (event.id, orjson.dumps(event.public()))


@router.get(
    "",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "object",
                        "description": "One message: id, optional event name, data (a JSON event)",
                        "properties": {
                            "id": {"type": "string"},
                            "event": {"type": "string"},
                            "data": {"type": "string"},
                        },
                    }
                }
            },
            "description": "Server-Sent Events",
        }
    },
)
async def stream_events(
    request: Request,
    ctx: Ctx,
    _: Read,
    types: Types = None,
    source: Annotated[
        str | None, Query(max_length=500, description="Source names or ids, comma-separated.")
    ] = None,
    after: Annotated[int | None, Query(ge=0, le=2**62, description="Start after this event id.")] = None,
    last_event_id: Annotated[str | None, Header(max_length=32, include_in_schema=False)] = None,
) -> StreamingResponse:
    """Server-Sent Events: media added, changed, moved, missing or restored; sources online, degraded or
    offline; scans started and finished; projects created, changed or removed."""
    flt = await run_query(request, event_svc.parse_filter, ctx, types, source)
    start = after
    if start is None and last_event_id is not None and last_event_id.strip().isdecimal():
        start = int(last_event_id.strip())
    hub: event_svc.EventHub = request.app.state.events
    sub = hub.subscribe(flt)  # before the replay: what comes meanwhile waits in the queue
    credentials = basic_or_bearer(request.headers.get("authorization"))

    async def body() -> AsyncIterator[bytes]:
        sent = 0
        try:
            yield b"retry: 3000\n: connected\n\n"
            if start is not None:
                replayed, gap = await run_query(request, event_svc.replay, ctx, start, flt)
                if gap:
                    yield b"event: gap\ndata: {}\n\n"
                for old in replayed:
                    sent = old.id
                    yield _message(old)
            loop = asyncio.get_running_loop()
            recheck = loop.time() + RECHECK
            while True:
                try:
                    event: Event | None = await asyncio.wait_for(sub.queue.get(), KEEPALIVE)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    if loop.time() < recheck:
                        continue
                else:
                    if event is None:
                        if sub.behind:
                            yield b"event: behind\ndata: {}\n\n"
                        return
                    if event.id > sent:
                        sent = event.id
                        yield _message(event)
                    if loop.time() < recheck:
                        continue
                recheck = loop.time() + RECHECK
                if await authenticate(request, credentials, csrf=False) is None:
                    yield b"event: unauthorized\ndata: {}\n\n"
                    return
        finally:
            hub.unsubscribe(sub)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


@router.get("/recent")
def recent_events(
    ctx: Ctx,
    _: Read,
    types: Types = None,
    after: Annotated[int, Query(ge=0, le=2**62, description="Events after this id; 0: the newest.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Events as a list, oldest first: the newest ``limit``, or those after ``after``."""
    data = event_svc.recent(ctx, after, limit, types)
    return {"data": data, "count": len(data)}
