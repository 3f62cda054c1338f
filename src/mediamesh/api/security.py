"""Who may talk to the API: an address allowlist, and bearer tokens with scopes (read < write < admin).

Repeated bad tokens from one address are slowed down: after a few failures within a minute, each further
attempt from that address waits longer (up to a few seconds) before it is answered.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import anyio
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import Response

from mediamesh.api.errors import error_response
from mediamesh.context import Context
from mediamesh.services import tokens as token_svc

FREE_FAILURES = 5
WINDOW = 60.0
MAX_DELAY = 5.0


class AllowlistMiddleware(BaseHTTPMiddleware):
    def __init__(self, app: Any, allow: str) -> None:
        super().__init__(app)
        self.networks = [ipaddress.ip_network(p.strip(), strict=False) for p in allow.split(",") if p.strip()]

    def allowed(self, host: str | None) -> bool:
        try:
            address = ipaddress.ip_address(host or "")
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        host = request.client.host if request.client else None
        if not self.allowed(host):
            return error_response(
                403, "forbidden", f"{host} is not allowed to use this server (MEDIAMESH_ALLOW)"
            )
        return await call_next(request)


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


def require(scope: str) -> Callable[..., Awaitable[dict[str, Any]]]:
    """A dependency: the caller's token, which must have at least ``scope``."""

    async def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> dict[str, Any]:
        ctx: Context = request.app.state.ctx
        token = None
        if credentials is not None:
            token = await anyio.to_thread.run_sync(token_svc.verify, ctx, credentials.credentials)
        if token is None:
            host = request.client.host if request.client else "?"
            await anyio.sleep(request.app.state.failed_logins.delay(host))
            raise HTTPException(
                401, "a valid token is needed: Authorization: Bearer TOKEN", {"WWW-Authenticate": "Bearer"}
            )
        if token_svc.rank(token["scope"]) < token_svc.rank(scope):
            raise HTTPException(403, f"this needs a {scope} token; yours is {token['scope']}")
        return token

    return dependency


Read = Annotated[dict[str, Any], Depends(require("read"))]
Write = Annotated[dict[str, Any], Depends(require("write"))]
Admin = Annotated[dict[str, Any], Depends(require("admin"))]
