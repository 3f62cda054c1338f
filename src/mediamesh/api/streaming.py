"""Streaming a source's file over HTTP with conditional and Range requests, so that a browser or VLC can
seek in a video that lives on a NAS. Headers are parsed by Werkzeug (a well-kept implementation); the
reads run in worker threads, so a slow source never holds up the event loop.

Whatever a share holds is untrusted: every answer carries ``Content-Security-Policy: sandbox`` (a page
that slipped through runs no script and has no origin: it cannot use the viewer's session), ``nosniff``,
and only audio, video and raster pictures are shown inline; anything else (SVG, HTML, text) is a
download under ``application/octet-stream``. A client that stops reading is cut off after
:data:`SEND_TIMEOUT` seconds, so that it cannot pin a file or a NAS connection forever.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from urllib.parse import quote

import anyio
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Send
from werkzeug.http import parse_etags, parse_if_range_header, parse_range_header, quote_etag

from mediamesh.services.content import OpenedContent
from mediamesh.web.errors import error_response

log = logging.getLogger(__name__)
CHUNK = 1 << 20
#: Seconds one chunk may wait for the client to take it before the answer is abandoned.
SEND_TIMEOUT = 60.0
#: Headers of every answer with bytes from a source (content and thumbnails).
UNTRUSTED_CONTENT = {
    "Content-Security-Policy": "sandbox; default-src 'none'; media-src 'self'; img-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "same-origin",
}
#: Pictures a browser shows without running anything in them (not SVG, which is a document).
_INLINE_IMAGES = frozenset(
    {"image/jpeg", "image/png", "image/gif", "image/webp", "image/avif", "image/bmp", "image/tiff"}
)


def shown_inline(content_type: str) -> bool:
    major = content_type.split("/", 1)[0]
    return major in ("audio", "video") or content_type in _INLINE_IMAGES


class TimedStreamingResponse(StreamingResponse):
    """A streaming answer whose every chunk must be taken by the client within ``SEND_TIMEOUT``; else the
    answer is abandoned (the connection is closed) and the file given back at once."""

    async def stream_response(self, send: Send) -> None:
        try:
            with anyio.fail_after(SEND_TIMEOUT):
                await send(
                    {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
                )
            async for chunk in self.body_iterator:
                with anyio.fail_after(SEND_TIMEOUT):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except TimeoutError:
            log.info("a client took nothing for %.0f s: its answer is abandoned", SEND_TIMEOUT)
        finally:
            closing = getattr(self.body_iterator, "aclose", None)
            if closing is not None:
                with anyio.CancelScope(shield=True):
                    await closing()


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
    inline = shown_inline(content.content_type)
    media_type = content.content_type if inline else "application/octet-stream"
    headers = {
        **UNTRUSTED_CONTENT,
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=31536000, immutable" if immutable else "private, no-cache",
        "Content-Disposition": f"{'inline' if inline else 'attachment'}; filename*=UTF-8''{quote(content.name)}",
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
            media_type=media_type,
            background=closing,
        )
    return TimedStreamingResponse(
        _chunks(content, start, stop, limiter),
        status_code=206 if isinstance(wanted, tuple) else 200,
        headers=headers,
        media_type=media_type,
    )
