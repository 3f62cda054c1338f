"""Streaming a source's file over HTTP with conditional and Range requests, so that a browser or VLC can
seek in a video that lives on a NAS. Headers are parsed by Werkzeug (a well-kept implementation); the
reads run in worker threads, so a slow source never holds up the event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import anyio
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from werkzeug.http import parse_etags, parse_if_range_header, parse_range_header, quote_etag

from mediamesh.api.errors import error_response
from mediamesh.services.content import OpenedContent

CHUNK = 1 << 20


def _byte_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """(start, stop) of a satisfiable single range; None to send everything (no, a malformed or a
    multi-part Range, which a server may ignore); False if the range cannot be satisfied (416)."""
    parsed = parse_range_header(header)
    if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
        return None
    start, stop = parsed.ranges[0]
    if stop is None and start < 0:  # the last N bytes; more than the whole file means all of it
        start = max(0, size + start)
    stop = size if stop is None else min(stop, size)
    if start >= size or start >= stop:
        return False
    return start, stop


def _chunks(
    content: OpenedContent, start: int, stop: int, limiter: anyio.CapacityLimiter | None
) -> AsyncIterator[bytes]:
    async def body() -> AsyncIterator[bytes]:
        try:
            if start:
                await anyio.to_thread.run_sync(content.fh.seek, start, limiter=limiter)
            left = stop - start
            while left > 0:
                data = await anyio.to_thread.run_sync(content.fh.read, min(CHUNK, left), limiter=limiter)
                if not data:  # shorter than the catalog says: it changed under us; stop, never pad
                    break
                left -= len(data)
                yield data
        finally:
            with anyio.CancelScope(shield=True):  # also when the client went away mid-file
                await anyio.to_thread.run_sync(content.close, limiter=limiter)

    return body()


def content_response(
    request: Request,
    content: OpenedContent,
    immutable: bool,
    limiter: anyio.CapacityLimiter | None = None,
) -> Response:
    """200, 206, 304 or 416 for an opened location; the file is closed when the answer is done.

    ``immutable``: the URL names the content itself (a media id), so a browser may keep it for good.
    """
    etag = quote_etag(content.media_id)
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=31536000, immutable" if immutable else "private, no-cache",
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(content.name)}",
        "X-Content-Type-Options": "nosniff",
        "X-Mediamesh-Source": content.source,  # which copy answered (source names are plain ASCII)
    }
    # Answers without a body close the file after they are sent, on a thread: closing a file on a NAS is
    # a network round trip, never to be waited for on the event loop.
    closing = BackgroundTask(content.close)
    if parse_etags(request.headers.get("if-none-match")).contains(content.media_id):
        return Response(status_code=304, headers=headers, background=closing)
    size = content.size
    wanted = _byte_range(request.headers.get("range"), size)
    if_range = parse_if_range_header(request.headers.get("if-range"))
    if (if_range.etag is not None and if_range.etag != content.media_id) or if_range.date is not None:
        wanted = None  # If-Range that is not our (strong) ETag: the whole file
    if wanted is False:
        response = error_response(
            416, "range_not_satisfiable", f"the range is outside the file's {size} bytes", headers
        )
        response.headers["Content-Range"] = f"bytes */{size}"
        response.background = closing
        return response
    start, stop = wanted if isinstance(wanted, tuple) else (0, size)
    headers["Content-Length"] = str(stop - start)
    if isinstance(wanted, tuple):
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    if request.method == "HEAD":
        return Response(
            status_code=206 if isinstance(wanted, tuple) else 200,
            headers=headers,
            media_type=content.content_type,
            background=closing,
        )
    return StreamingResponse(
        _chunks(content, start, stop, limiter),
        status_code=206 if isinstance(wanted, tuple) else 200,
        headers=headers,
        media_type=content.content_type,
    )
