"""Limits that keep one client from holding the server: request bodies, who may send one, and how many
content streams one address may hold open.

Plain ASGI (no per-request task), in front of routing:
- a body larger than :data:`MAX_BODY` is refused with 413 before it is read (``Content-Length``), or as
  soon as it grows past the limit (chunked): bodies are read here, whole, before the app sees them;
- a request to the API that carries a body and no valid token (or session) is refused with 401 before a
  byte of the body is read or parsed;
- one address may have at most :data:`STREAMS_PER_CLIENT` content answers and event streams in flight
  (429 beyond);
- the WebDAV view (``/dav``) reads no body but a PROPFIND's, and that only from a valid token.

The server itself caps its connections (``uvicorn --limit-concurrency``, see cli/serve.py).
"""

from __future__ import annotations

import json
import re
from collections import Counter

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediamesh.web.errors import error_response
from mediamesh.web.security import (
    DAV_CHALLENGE,
    DAV_UNAUTHORIZED,
    UNAUTHORIZED,
    authenticate,
    basic_or_bearer,
)

#: Bytes of a request body: the API takes small JSON documents; the sign-in form is smaller still.
MAX_BODY = 1 << 20
#: Content answers (a player seeking opens a few at once) one client address may have in flight.
STREAMS_PER_CLIENT = 16
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE", "PROPFIND"})
DAV = "/dav"
#: Event streams count with content answers: both hold a connection open.
EVENTS = "/api/v1/events"


def _dav(path: str) -> bool:
    return path == DAV or path.startswith(DAV + "/")


def _routed(scope: Scope) -> bool:
    """Some route of the app takes this method at this path."""
    return any(route.matches(scope)[0] is Match.FULL for route in scope["app"].router.routes)


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hand the body read ahead to the app, then whatever comes next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


_LOOSE_TYPES = (b"", b"application/x-www-form-urlencoded")


def _json_by_default(scope: Scope, body: bytes) -> Scope:
    """A JSON body sent without saying so (``curl -d '{...}'`` says form-urlencoded) is read as JSON.

    Only with an ``Authorization`` header: a browser cannot add one to a cross-site form, so this never
    lets another site's form post to the API (sessions need JSON and the CSRF header anyway)."""
    headers = scope.get("headers", [])
    kept = [(k, v) for k, v in headers if k != b"content-type"]
    given = next((v for k, v in headers if k == b"content-type"), b"").split(b";")[0].strip().lower()
    if given not in _LOOSE_TYPES or body.lstrip()[:1] not in (b"{", b"["):
        return scope
    if not any(k == b"authorization" for k, _ in headers):
        return scope
    return {**scope, "headers": [*kept, (b"content-type", b"application/json")]}


#: A JSON escape of a surrogate (``\\udcff``): text no path, catalog row or answer can carry alone.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _lone_surrogate(body: bytes) -> bool:
    """The JSON body holds a string with half a UTF-16 pair (checked only when it has such an escape:
    a body with a lone surrogate in a list was stored, and then every answer that showed it failed)."""
    if not _SURROGATE_ESCAPE.search(body):
        return False
    try:
        json.dumps(json.loads(body), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except ValueError:
        return False  # not JSON: the route says what is wrong
    return False


class RequestLimits:
    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY, streams: int = STREAMS_PER_CLIENT) -> None:
        self.app = app
        self.max_body = max_body
        self.streams = streams
        self._open: Counter[str] = Counter()  # content answers in flight, per client address

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        dav = _dav(path)
        if scope["method"] in _BODY_METHODS and (not dav or scope["method"] == "PROPFIND"):
            refused = await self._refuse_body(scope, receive)
            if refused is not None:
                await refused(scope, receive, send)
                return
            body = await self._read_body(receive)
            if body is None:
                await self._too_large()(scope, receive, send)
                return
            receive = _replay(body, receive)
            if path.startswith("/api/"):
                if _lone_surrogate(body):
                    message = (
                        "the request holds text that is not valid Unicode (half of a UTF-16 surrogate pair)"
                    )
                    await error_response(422, "invalid_input", message)(scope, receive, send)
                    return
                scope = _json_by_default(scope, body)
        content = path.endswith("/content") and path.startswith("/api/")
        if content or path == EVENTS or (dav and scope["method"] in ("GET", "HEAD")):
            await self._stream(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _refuse_body(self, scope: Scope, receive: Receive) -> Response | None:
        headers = dict(scope.get("headers", ()))
        length = headers.get(b"content-length", b"").decode("latin-1").strip()
        if length and (not (length.isascii() and length.isdigit()) or int(length) > self.max_body):
            return self._too_large()
        request = Request(scope, receive)
        if _dav(scope["path"]):  # PROPFIND: a token in Basic (file managers) or Bearer, never a cookie
            value = basic_or_bearer(request.headers.get("authorization"))
            if value is None or await authenticate(request, value, csrf=False) is None:
                return error_response(401, "unauthorized", DAV_UNAUTHORIZED, DAV_CHALLENGE)
            return None
        if not scope["path"].startswith("/api/") or not _routed(scope):
            return None  # no route takes this method here: the app answers 404/405 without the body
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        bearer = value.strip() if scheme.lower() == "bearer" and value.strip() else None
        if await authenticate(request, bearer, csrf=False) is None:
            return error_response(401, "unauthorized", UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
        return None

    def _too_large(self) -> Response:
        return error_response(413, "too_large", f"a request body may be at most {self.max_body} bytes")

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body (at most ``max_body`` bytes: the API takes small documents), or None past it."""
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)  # the client went away; the app hears it from the replay
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        host = client[0] if client else "?"
        if self._open[host] >= self.streams:
            response = error_response(
                429,
                "too_many_streams",
                f"at most {self.streams} content answers at once per client; finish or close some",
                {"Retry-After": "5"},
            )
            await response(scope, receive, send)
            return
        self._open[host] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._open[host] -= 1
            if not self._open[host]:
                del self._open[host]
