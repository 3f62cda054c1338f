"""Who may talk to the API: an address allowlist, and bearer tokens with scopes (read < write < admin).

Repeated bad tokens from one address are slowed down: after a few failures within a minute, each further
attempt from that address waits longer (up to a few seconds) before it is answered.
"""

from __future__ import annotations

import base64
import ipaddress
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

import anyio
from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediamesh.context import Context
from mediamesh.services import tokens as token_svc
from mediamesh.services.links import link_is_valid
from mediamesh.web import session
from mediamesh.web.errors import error_response

FREE_FAILURES = 5
WINDOW = 60.0
MAX_DELAY = 5.0


class AllowlistMiddleware:
    """403 for clients whose address is not in MEDIAMESH_ALLOW (plain ASGI: no per-request task)."""

    def __init__(self, app: ASGIApp, allow: str, hosts: list[str] | None = None) -> None:
        self.app = app
        self.hosts = hosts or []
        self.networks = [ipaddress.ip_network(p.strip(), strict=False) for p in allow.split(",") if p.strip()]
        self._seen: dict[str, bool] = {}

    def allowed(self, host: str | None) -> bool:
        known = self._seen.get(host or "")
        if known is not None:
            return known
        try:
            address = ipaddress.ip_address(host or "")
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        verdict = any(address in network for network in self.networks)
        if len(self._seen) < 4096:
            self._seen[host or ""] = verdict
        return verdict

    def host_allowed(self, scope: Scope) -> bool:
        """The Host header against the allowed names (``*.example.lan`` allows sub-domains). An address
        is always answered: DNS rebinding needs a name."""
        header = next((v for k, v in scope.get("headers", ()) if k == b"host"), b"")
        name = header.decode("latin-1").strip().lower()
        name = name[1 : name.index("]")] if name.startswith("[") and "]" in name else name.rsplit(":", 1)[0]
        if not name:
            return True  # no Host (HTTP/1.0): not a browser, so no rebinding
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            pass
        for allowed in self.hosts:
            if name == allowed or (allowed.startswith("*.") and name.endswith(allowed[1:])):
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            host = client[0] if client else None
            if not self.allowed(host):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                response = error_response(
                    403, "forbidden", f"{host} is not allowed to use this server (MEDIAMESH_ALLOW)"
                )
                await response(scope, receive, send)
                return
            if self.hosts and scope["type"] == "http" and not self.host_allowed(scope):
                response = error_response(
                    421,
                    "misdirected_request",
                    "this server does not answer to that host name: add it to MEDIAMESH_ALLOWED_HOSTS "
                    "(or use the server's address)",
                )
                await response(scope, receive, send)
                return
            if scope.get("scheme") == "https":
                send = _with_hsts(send)
        await self.app(scope, receive, send)


def _with_hsts(send: Send) -> Send:
    """Under TLS, tell browsers to come back over TLS only (they ignore it on an untrusted certificate)."""

    async def hsts(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {
                **message,
                "headers": [*message.get("headers", ()), (b"strict-transport-security", HSTS)],
            }
        await send(message)

    return hsts


HSTS = b"max-age=31536000"


Kind = Literal["bearer", "session", "token-id"]


class TokenCache:
    """Tokens verified in the last few seconds, so that a busy client costs no catalog read per request.

    A token revoked through this server is dropped at once; one revoked by another process (the CLI)
    stops working within ``TTL`` seconds.
    """

    TTL = 5.0

    def __init__(self) -> None:
        # (what the key is, the key) -> (when verified, the token, the session). Keys are looked up in
        # their own kind only: a bearer value can never be taken for a token id or a session cookie.
        self._entries: dict[tuple[Kind, str], tuple[float, dict[str, Any], session.Session | None]] = {}

    def get(self, kind: Kind, key: str) -> tuple[dict[str, Any], session.Session | None] | None:
        hit = self._entries.get((kind, key))
        if hit is None or time.monotonic() - hit[0] > self.TTL:
            return None
        return hit[1], hit[2]

    def put(
        self, kind: Kind, key: str, token: dict[str, Any], current: session.Session | None = None
    ) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[(kind, key)] = (time.monotonic(), token, current)

    def forget(self, token_id: int) -> None:
        for key, (_, token, _) in list(self._entries.items()):
            if token["id"] == token_id:
                self._entries.pop(key, None)


class FailedLogins:
    """Bad-token attempts per address, to answer repeated ones more and more slowly."""

    def __init__(self) -> None:
        self._seen: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def delay(self, host: str) -> float:
        now = time.monotonic()
        with self._lock:
            attempts = self._seen[host]
            while attempts and now - attempts[0] > WINDOW:
                attempts.popleft()
            attempts.append(now)
            extra = len(attempts) - FREE_FAILURES
        return min(MAX_DELAY, 0.25 * 2 ** (extra - 1)) if extra > 0 else 0.0


bearer = HTTPBearer(
    auto_error=False, description="A token from `mediamesh token create` (or the first start)."
)


async def slow_down(request: Request) -> None:
    """Answer a wrong token (bearer, sign-in form or signed link) later, the more so the more often."""
    host = request.client.host if request.client else "?"
    await anyio.sleep(request.app.state.failed_logins.delay(host))


async def browser_session(request: Request) -> tuple[session.Session, dict[str, Any]] | None:
    """The session and token behind a browser's session cookie (see web/session.py), or None."""
    value = request.cookies.get(session.COOKIE)
    if not value:
        return None
    cache: TokenCache = request.app.state.token_cache
    hit = cache.get("session", value)
    if hit is not None and hit[1] is not None:
        return hit[1], hit[0]
    found = await anyio.to_thread.run_sync(session.session_token, request.app.state.ctx, value)
    if found is not None:
        cache.put("session", value, found[1], found[0])
    return found


async def check_csrf(request: Request, current: session.Session) -> None:
    """A request that changes something with a session cookie must carry the session's CSRF token."""
    if request.method in session.SAFE_METHODS:
        return
    sent = request.headers.get(session.CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = str((await request.form()).get(session.CSRF_FIELD) or "")
    if not session.csrf_valid(request.app.state.ctx, current, sent):
        raise HTTPException(403, "this request needs the page's CSRF token; reload the page and try again")


async def authenticate(request: Request, credentials: str | None, csrf: bool = True) -> dict[str, Any] | None:
    """The token behind a bearer value, or else behind the browser's session cookie (whose CSRF token a
    change must carry, unless ``csrf`` is False: a check before the body is read), or None. A wrong bearer
    value is answered slowly."""
    if credentials is not None:
        ctx: Context = request.app.state.ctx
        cache: TokenCache = request.app.state.token_cache
        hit = cache.get("bearer", credentials)
        token = hit[0] if hit is not None else None
        if token is None:
            token = await anyio.to_thread.run_sync(token_svc.verify, ctx, credentials)
            if token is not None:
                cache.put("bearer", credentials, token)
            else:  # a wrong token (guessing), not a forgotten header
                await slow_down(request)
        return token
    found = await browser_session(request)
    if found is None:
        return None
    if csrf:
        await check_csrf(request, found[0])
    return found[1]


UNAUTHORIZED = "a valid token is needed: Authorization: Bearer TOKEN"
DAV_UNAUTHORIZED = "a valid token is needed: sign in with any user name and the token as the password"
#: Browsers and file managers then ask for a user name and a password (the token).
DAV_CHALLENGE = {"WWW-Authenticate": 'Basic realm="mediamesh", charset="UTF-8"'}
LIMITED = "this token is limited to some sources or projects: it opens the WebDAV view (/dav/) only"


def basic_or_bearer(authorization: str | None) -> str | None:
    """The token in an ``Authorization`` header: a bearer value, or the password of HTTP Basic (what WebDAV
    clients and file managers can send; the user name is not looked at)."""
    scheme, _, value = (authorization or "").partition(" ")
    value = value.strip()
    if not value:
        return None
    if scheme.lower() == "bearer":
        return value
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def require(scope: str) -> Callable[..., Awaitable[dict[str, Any]]]:
    """A dependency: the caller's token (bearer, or a browser session), which must have at least ``scope``."""

    async def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> dict[str, Any]:
        token = await authenticate(request, credentials.credentials if credentials is not None else None)
        if token is None:
            raise HTTPException(401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
        if token_svc.is_limited(token):
            raise HTTPException(403, LIMITED)
        if token_svc.rank(token["scope"]) < token_svc.rank(scope):
            raise HTTPException(403, f"this needs a token with the {scope} scope; yours has {token['scope']}")
        return token

    return dependency


_read = require("read")


async def read_or_signed_link(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    expires: Annotated[int | None, Query(ge=0, le=2**40, description="From a signed link.")] = None,
    tid: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="From a signed link.")] = None,
    signature: Annotated[str | None, Query(max_length=128, description="From a signed link.")] = None,
) -> dict[str, Any]:
    """A read token, or a valid signed link for exactly this path, made by a token that still works (see
    services/links.py)."""
    if expires is None and signature is None and tid is None:
        return await _read(request, credentials)
    ctx: Context = request.app.state.ctx
    valid = (
        expires is not None
        and signature is not None
        and tid is not None
        and link_is_valid(ctx, request.url.path, expires, tid, signature)
    )
    token = await _token_by_id(request, tid) if valid and tid is not None else None
    if token is None:
        await slow_down(request)
        raise HTTPException(401, "this link is invalid or has expired; ask for a new one")
    return {"id": None, "name": "signed link", "scope": "read", "link_of": token["id"]}


async def _token_by_id(request: Request, token_id: int) -> dict[str, Any] | None:
    """A token that still works, by id (cached like bearer tokens; a revocation here drops it at once)."""
    cache: TokenCache = request.app.state.token_cache
    hit = cache.get("token-id", str(token_id))
    if hit is not None:
        return hit[0]
    token = await anyio.to_thread.run_sync(token_svc.by_id, request.app.state.ctx, token_id)
    if token is not None:
        cache.put("token-id", str(token_id), token)
    return token


Read = Annotated[dict[str, Any], Depends(require("read"))]
ReadOrLink = Annotated[dict[str, Any], Depends(read_or_signed_link)]
Write = Annotated[dict[str, Any], Depends(require("write"))]
Admin = Annotated[dict[str, Any], Depends(require("admin"))]


async def dav_token(request: Request) -> dict[str, Any]:
    """The token of a WebDAV request: any scope (read is the least), limited tokens included; sent as the
    password of HTTP Basic or as a bearer value, never taken from a session cookie."""
    value = basic_or_bearer(request.headers.get("authorization"))
    token = await authenticate(request, value, csrf=False) if value is not None else None
    if token is None:
        raise HTTPException(401, DAV_UNAUTHORIZED, DAV_CHALLENGE)
    return token


DavToken = Annotated[dict[str, Any], Depends(dav_token)]
