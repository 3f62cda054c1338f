"""Browser sessions: a token is exchanged once for a signed cookie, so that the token itself never sits in
the browser. The cookie names the token (by id), so revoking the token ends every session made with it.

A session also carries a CSRF secret. Requests that change something and are authenticated by the cookie
must send it back (the ``X-CSRF-Token`` header, or a ``csrf_token`` form field): SameSite=Strict already
keeps other sites' requests from carrying the cookie, and the token is a second, independent guard.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mediamesh.context import Context
from mediamesh.crypto import Signer
from mediamesh.services import tokens as token_svc

COOKIE = "mm_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
#: A session lasts a week; signing in again makes a new one.
LIFETIME = 7 * 24 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Session:
    token_id: int
    expires: int
    nonce: str

    def message(self) -> str:
        # Signed links sign "/path\n<expires>": a session's message can never look like one.
        return f"session\n{self.token_id}\n{self.expires}\n{self.nonce}"


def _box(ctx: Context) -> Signer:
    return ctx.signer


def new_cookie(ctx: Context, token_id: int) -> str:
    session = Session(token_id, int(time.time()) + LIFETIME, secrets.token_urlsafe(16))
    return f"{session.token_id}.{session.expires}.{session.nonce}.{_box(ctx).sign(session.message())}"


def parse_cookie(ctx: Context, value: str) -> Session | None:
    """The session a cookie stands for, if its signature is ours and it has not expired."""
    parts = value.split(".")
    if len(parts) != 4 or len(value) > 200 or not parts[0].isascii() or not parts[1].isascii():
        return None
    if not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    session = Session(int(parts[0]), int(parts[1]), parts[2])
    if session.expires < time.time() or not _box(ctx).verify(session.message(), parts[3]):
        return None
    return session


def csrf_token(ctx: Context, session: Session) -> str:
    return _box(ctx).sign(f"csrf\n{session.nonce}")


def csrf_valid(ctx: Context, session: Session, sent: str | None) -> bool:
    """Constant time; any text (non-ASCII included) that is not the token is simply not valid."""
    expected = csrf_token(ctx, session).encode()
    return bool(sent) and hmac.compare_digest(expected, (sent or "").encode("utf-8", "replace"))


def session_token(ctx: Context, value: str) -> tuple[Session, dict[str, Any]] | None:
    """The session and its (still valid) token, or None."""
    session = parse_cookie(ctx, value)
    if session is None:
        return None
    token = token_svc.by_id(ctx, session.token_id)
    return (session, token) if token is not None else None


def set_cookie(request: Request, response: Response, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=LIFETIME,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
