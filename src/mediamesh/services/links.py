"""Signed links: a content URL that works without a token until it expires, for what cannot send an
``Authorization`` header (a browser's ``<video src>``, VLC, a TV). A link names one path and the token
that asked for it: it works only while that token does (revoking the token ends its links at once), and
for :data:`DEFAULT_TTL` unless asked otherwise. It is signed with the server's signing key (changing that
key invalidates every link). Access logs show links without their signature (see api/logging.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from mediamesh.context import Context
from mediamesh.errors import InvalidInput

DEFAULT_TTL = 3 * 3600  # a feature film, with pauses
MAX_TTL = 7 * 24 * 3600


def _now() -> float:
    return time.time()


def _message(path: str, expires: int, token_id: int) -> str:
    return f"link\n{path}\n{expires}\n{token_id}"


def make_link(ctx: Context, path: str, ttl: int, token_id: int, base_url: str) -> dict[str, Any]:
    """A link to ``path``: ``url`` absolute (players need one: MEDIAMESH_PUBLIC_URL, else ``base_url``,
    where the request came to), ``path`` the same relative to the server."""
    if not 60 <= ttl <= MAX_TTL:
        raise InvalidInput(f"ttl must be between 60 and {MAX_TTL} seconds")
    expires = int(_now()) + ttl
    signature = ctx.signer.sign(_message(path, expires, token_id))
    relative = f"{path}?expires={expires}&tid={token_id}&signature={signature}"
    base = (ctx.settings.public_url or base_url).rstrip("/")
    return {
        "url": base + relative,
        "path": relative,
        "expires_at": datetime.fromtimestamp(expires, UTC).isoformat(),
    }


def link_is_valid(ctx: Context, path: str, expires: int, token_id: int, signature: str) -> bool:
    """The signature is ours for this path, moment and token, and the moment has not passed. Whether the
    token still works is the caller's check."""
    if expires < _now() or expires > _now() + MAX_TTL:
        return False
    return ctx.signer.verify(_message(path, expires, token_id), signature)
