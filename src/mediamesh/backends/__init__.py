"""Source kinds. Each is one module named after its URL scheme; this module maps locations to them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from mediamesh.backends.base import Backend
from mediamesh.backends.local import LocalBackend
from mediamesh.errors import InvalidInput

KINDS = ("local",)


@dataclass(frozen=True, slots=True)
class Location:
    """A parsed source location; ``display`` is what is stored and shown (never a secret)."""

    kind: str
    display: str
    path: str


def parse_location(location: str) -> Location:
    """Parse ``file:///abs/path`` or a plain absolute path (other schemes come with their issues)."""
    text = location.strip()
    if not text:
        raise InvalidInput("a source location is required")
    if text.startswith("/"):
        return Location("local", os.path.normpath(text), os.path.normpath(text))
    parts = urlsplit(text)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InvalidInput(f"file:// locations must be on this machine, not {parts.netloc!r}")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise InvalidInput(f"file:// location needs an absolute path: {location!r}")
        return Location("local", os.path.normpath(path), os.path.normpath(path))
    if parts.scheme in ("smb", "sftp", "nfs"):
        raise InvalidInput(f"{parts.scheme}:// sources are not supported yet in this version")
    raise InvalidInput(f"unrecognised source location {location!r}: use an absolute path or file:///abs/path")


def open_backend(kind: str, location: str) -> Backend:
    """Build the backend for a stored source (kind + display location)."""
    if kind == "local":
        return LocalBackend(parse_location(location).path)
    raise InvalidInput(f"unknown source kind {kind!r}")
