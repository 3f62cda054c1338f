"""``/dav/``: the catalog as a read-only WebDAV share (RFC 4918, class 1) that file managers, players and
``rclone`` can mount. The tree is services/namespace.py's; this module speaks the protocol.

- OPTIONS answers anyone (it says only what the server speaks); everything else needs a token, sent as
  the password of HTTP Basic (any user name) or as a bearer value;
- PROPFIND with ``Depth: 0`` or ``1`` (``infinity``, or no Depth, is refused: RFC 4918's
  propfind-finite-depth), its answer streamed a page of entries at a time;
- GET and HEAD of a file are the content endpoint's code (api/streaming.py): Range, ETag = media id,
  the sandbox headers, the per-client stream limit; GET of a folder is a plain listing for browsers;
- every method that writes is answered 405: mediamesh never writes to a source.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Iterator
from urllib.parse import unquote_to_bytes

import anyio
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import Response

from mediamesh.api.streaming import UNTRUSTED_CONTENT, TimedStreamingResponse, content_response
from mediamesh.dav import xml
from mediamesh.errors import InvalidInput, NotFound
from mediamesh.services.namespace import Namespace, Node, View
from mediamesh.web.deps import run_query, source_limiter
from mediamesh.web.errors import error_response
from mediamesh.web.security import DavToken

PREFIX = "/dav"
READ_METHODS = ("OPTIONS", "GET", "HEAD", "PROPFIND")
WRITE_METHODS = ("PUT", "POST", "PATCH", "DELETE", "MKCOL", "COPY", "MOVE", "PROPPATCH", "LOCK", "UNLOCK")
#: What a PROPFIND body may weigh (a list of property names is a few hundred bytes).
MAX_PROPFIND = 64 << 10
ALLOW = ", ".join(READ_METHODS)
XML_TYPE = "application/xml; charset=utf-8"


def _segments(request: Request) -> list[str]:
    """The names below /dav/ as the client sent them, each percent-decoded on its own (so that ``%2F`` is a
    character of a name, never a separator) and read as UTF-8."""
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    root = str(request.scope.get("root_path", "")).encode()
    raw = raw.split(b"?", 1)[0]
    if root and raw.startswith(root + PREFIX.encode()):
        raw = raw[len(root) :]
    try:
        parts = [unquote_to_bytes(p).decode("utf-8") for p in raw[len(PREFIX) :].split(b"/") if p]
    except UnicodeDecodeError as exc:
        raise HTTPException(400, "a name in this path is not UTF-8") from exc
    if any(p in (".", "..") or "/" in p or "\x00" in p for p in parts):
        raise NotFound("no such file or folder")
    return parts


def _href(request: Request, parts: list[str], node: Node | None = None) -> str:
    """The absolute path of ``parts`` (and ``node`` in it), below a proxy's prefix if there is one."""
    prefix = str(request.scope.get("root_path", "")) + PREFIX
    if node is not None:
        return xml.href(prefix, [*parts, node.name], node.folder)
    return xml.href(prefix, parts, True)


def _namespace(request: Request) -> Namespace:
    ns: Namespace = request.app.state.namespace
    return ns


async def _pages(request: Request, pages: Iterator[list[Node]]) -> AsyncIterator[list[Node]]:
    """The pages of a listing, each read on the catalog's threads."""
    while True:
        page = await run_query(request, next, pages, None)
        if page is None:
            return
        yield page


async def options(request: Request) -> Response:
    """What the server speaks, to anyone: class 1 (no locks: a Mac mounts the share read-only)."""
    headers = {"DAV": "1", "Allow": ALLOW, "MS-Author-Via": "DAV", "Content-Length": "0"}
    return Response(status_code=200, headers=headers)


async def propfind(request: Request, token: DavToken) -> Response:
    depth = request.headers.get("depth", "infinity").strip().lower()
    if depth not in ("0", "1"):
        return Response(xml.FINITE_DEPTH, 403, media_type=XML_TYPE)
    body = await request.body()
    if len(body) > MAX_PROPFIND:
        return error_response(413, "too_large", f"a PROPFIND body may be at most {MAX_PROPFIND} bytes")
    try:
        asked = xml.parse_propfind(body)
    except InvalidInput as exc:  # WebDAV clients (and RFC 4918) expect 400 for a body that cannot be read
        return error_response(400, "bad_request", exc.message)
    parts = _segments(request)
    view = View.of(token)
    ns = _namespace(request)
    node = await run_query(request, ns.resolve, parts, view)
    if node.folder and parts:
        node = Node(parts[-1], True)  # the folder as the client named it

    async def multistatus() -> AsyncIterator[bytes]:
        link = _href(request, parts[:-1], node) if parts else _href(request, [])
        yield (xml.HEAD + xml.response(link, node, asked)).encode()
        if depth == "1" and node.folder:
            async for page in _pages(request, ns.children(parts, view)):
                yield "".join(xml.response(_href(request, parts, n), n, asked) for n in page).encode()
        yield xml.TAIL.encode()

    return TimedStreamingResponse(multistatus(), 207, headers={"DAV": "1"}, media_type=XML_TYPE)


async def get(request: Request, token: DavToken) -> Response:
    parts = _segments(request)
    view = View.of(token)
    ns = _namespace(request)
    node = await run_query(request, ns.resolve, parts, view)
    if node.folder:
        return _listing(request, ns, parts, view)
    limiter = source_limiter(request)
    opened = await anyio.to_thread.run_sync(ns.open, node, limiter=limiter)
    return content_response(request, opened, immutable=False, limiter=limiter)


def _listing(request: Request, ns: Namespace, parts: list[str], view: View) -> Response:
    """A folder in a browser: a plain page of links (names escaped; the page runs nothing, see UNTRUSTED)."""
    title = html.escape("/" + "/".join([PREFIX.strip("/"), *parts]) + "/")

    async def page() -> AsyncIterator[bytes]:
        yield f'<!doctype html><meta charset="utf-8"><title>{title}</title><h1>{title}</h1><ul>\n'.encode()
        if parts:
            yield f'<li><a href="{_href(request, parts[:-1])}">../</a></li>\n'.encode()
        if request.method == "GET":
            async for nodes in _pages(request, ns.children(parts, view)):
                yield "".join(
                    f'<li><a href="{_href(request, parts, n)}">{html.escape(n.name)}{"/" if n.folder else ""}</a></li>\n'
                    for n in nodes
                ).encode()
        yield b"</ul>\n"

    headers = {**UNTRUSTED_CONTENT, "Cache-Control": "private, no-cache"}
    return TimedStreamingResponse(page(), 200, headers=headers, media_type="text/html; charset=utf-8")


async def read_only(request: Request) -> Response:
    return error_response(
        405,
        "method_not_allowed",
        f"the WebDAV view is read-only ({request.method} is not taken): mediamesh never writes to a source",
        {"Allow": ALLOW},
    )


def install(app: FastAPI) -> None:
    """The WebDAV view at /dav/, on a namespace the app owns."""
    app.state.namespace = Namespace(app.state.ctx)
    router = APIRouter(include_in_schema=False)
    for path in (PREFIX, PREFIX + "/{path:path}"):
        router.add_api_route(path, options, methods=["OPTIONS"])
        router.add_api_route(path, propfind, methods=["PROPFIND"])
        router.add_api_route(path, get, methods=["GET", "HEAD"])
        router.add_api_route(path, read_only, methods=list(WRITE_METHODS))
    app.include_router(router)
