"""Source kinds. Each is one module named after its URL scheme; this module maps locations to them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from mediamesh.backends.base import Backend, InvalidPathError
from mediamesh.backends.local import LocalBackend, LocalRoots
from mediamesh.errors import InvalidInput

KINDS = ("local", "smb")
#: Kinds whose sources take a password (stored encrypted, never shown).
WITH_PASSWORD = frozenset({"smb"})


@dataclass(frozen=True, slots=True)
class Location:
    """A parsed source location; ``display`` is what is stored and shown (never a secret)."""

    kind: str
    display: str


def parse_location(location: str) -> Location:
    """Parse ``file:///abs/path``, a plain absolute path, or ``smb://[user@]host[:port]/share[/sub]``."""
    text = location.strip()
    if not text:
        raise InvalidInput("a source location is required")
    if text.startswith("/"):
        return Location("local", os.path.normpath(text))
    parts = urlsplit(text)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InvalidInput(f"file:// locations must be on this machine, not {parts.netloc!r}")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise InvalidInput(f"file:// location needs an absolute path: {location!r}")
        return Location("local", os.path.normpath(path))
    if parts.scheme == "smb":
        from mediamesh.backends.smb import SmbOptions

        try:
            return Location("smb", SmbOptions.parse(text).display)
        except (ValueError, InvalidPathError) as exc:
            raise InvalidInput(f"invalid SMB location: {exc}") from None
    if parts.scheme in ("sftp", "nfs"):
        raise InvalidInput(f"{parts.scheme}:// sources are not supported yet in this version")
    raise InvalidInput(
        f"unrecognised source location {location!r}: use an absolute path, file:///abs/path "
        "or smb://[user@]host[:port]/share[/sub/path]"
    )


def credential_scope(kind: str, location: str) -> tuple[Any, ...]:
    """What a stored secret was given for: the secret may be used again only for a location with the same
    scope (for SMB: host, port, share and user), never lent to a server someone else names."""
    if kind == "smb":
        from mediamesh.backends.smb import SmbOptions

        o = SmbOptions.parse(location)
        return ("smb", o.host.lower(), o.port, o.share.lower(), (o.username or "").lower())
    return (kind, location)


def open_backend(
    kind: str, location: str, secret: dict[str, Any] | None = None, roots: LocalRoots | None = None
) -> Backend:
    """Build the backend for a stored source (kind + display location + decrypted secret); ``roots`` is
    where local sources may point (the server's and the CLI's policy; None only in tests of a backend)."""
    if kind == "local":
        return LocalBackend(location, roots)
    if kind == "smb":
        from mediamesh.backends.smb import SmbBackend, SmbOptions

        return SmbBackend(SmbOptions.parse(location), (secret or {}).get("password"))
    raise InvalidInput(f"unknown source kind {kind!r}")
