"""Signed links: a content URL that works without a token until it expires, for what cannot send an
``Authorization`` header (a browser's ``<video src>``, VLC, a TV). A link names one path; it is signed
with a key derived from the server's secret key (changing that key invalidates every link)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from mediamesh.context import Context
from mediamesh.crypto import SecretBox
from mediamesh.errors import InvalidInput

MAX_TTL = 7 * 24 * 3600


def _now() -> float:
    return time.time()


def _message(path: str, expires: int) -> str:
    return f"{path}\n{expires}"


def make_link(ctx: Context, path: str, ttl: int) -> dict[str, Any]:
    if not 60 <= ttl <= MAX_TTL:
        raise InvalidInput(f"ttl must be between 60 and {MAX_TTL} seconds")
    expires = int(_now()) + ttl
    signature = SecretBox.from_settings(ctx.settings).sign(_message(path, expires))
    return {
        "url": f"{path}?expires={expires}&signature={signature}",
        "expires_at": datetime.fromtimestamp(expires, UTC).isoformat(),
    }


def link_is_valid(ctx: Context, path: str, expires: int, signature: str) -> bool:
    if expires < _now() or expires > _now() + MAX_TTL:
        return False
    return SecretBox.from_settings(ctx.settings).verify(_message(path, expires), signature)
