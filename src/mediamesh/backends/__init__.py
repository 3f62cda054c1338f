"""Source kinds. Each is one module that registers itself (see :mod:`mediamesh.backends.registry`); this
module turns what a user types into a kind and a location, and a stored source into a backend."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mediamesh.backends import registry
from mediamesh.backends.base import Backend, Features
from mediamesh.backends.registry import BackendKind
from mediamesh.errors import InvalidInput

if TYPE_CHECKING:
    from mediamesh.backends.local import LocalRoots


@dataclass(frozen=True, slots=True)
class Location:
    """A parsed source location; ``display`` is what is stored and shown (never a secret)."""

    kind: str
    display: str


def kind_of(name: str) -> BackendKind:
    kind = registry.get(name)
    if kind is None and (missing := registry.unavailable(name)):
        raise InvalidInput(f"{name} sources cannot be used on this machine: {missing}")
    if kind is None:
        raise InvalidInput(f"unknown kind of source {name!r}: use one of {', '.join(kind_names())}")
    return kind


def kind_names() -> list[str]:
    return [k.name for k in registry.kinds()]


def _usage() -> str:
    return " or ".join(k.example for k in registry.kinds())


def parse_location(location: str) -> Location:
    """Parse what a user typed (an absolute path, ``file:///...``, ``smb://...``) into kind and location."""
    text = location.strip()
    if not text:
        raise InvalidInput("a source location is required")
    if "\x00" in text:
        raise InvalidInput("a source location cannot hold a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no path, URL or catalog row can carry it
        raise InvalidInput("a source location must be valid Unicode text") from None
    scheme = "file" if text.startswith("/") else urlsplit(text).scheme
    kind = registry.for_scheme(scheme) if scheme else None
    if kind is None and scheme and (missing := registry.unavailable(scheme)):
        raise InvalidInput(f"{scheme} sources cannot be used on this machine: {missing}")
    if kind is None:
        raise InvalidInput(f"unrecognised source location {location!r}: use {_usage()}")
    try:
        return Location(kind.name, kind.parse(text))
    except ValueError as exc:
        raise InvalidInput(f"invalid {kind.name} location: {exc}") from None


def compose_location(kind: str, fields: Mapping[str, str]) -> str:
    """A location from a form's fields (the UI's add-source form, ``{"kind", "fields"}`` in the API)."""
    try:
        return kind_of(kind).compose(fields)
    except ValueError as exc:
        raise InvalidInput(f"invalid {kind} location: {exc}") from None


def credential_scope(kind: str, location: str) -> tuple[Any, ...]:
    """What a stored secret was given for: the secret may be used again only for a location with the same
    scope (for SMB: host, port, share and user), never lent to a server someone else names."""
    return (kind, *kind_of(kind).credential_scope(location))


def features_of(kind: str, stored: Mapping[str, Any] | None = None) -> Features:
    """A source's features as recorded with it at registration, else its kind's."""
    base = kind_of(kind).features
    if not stored:
        return base
    return Features(
        file_ids=bool(stored.get("file_ids", base.file_ids)),
        case_insensitive=bool(stored.get("case_insensitive", base.case_insensitive)),
        local_paths=base.local_paths,
        slow_io=base.slow_io,
        mtime_precision_ns=int(stored.get("mtime_precision_ns", base.mtime_precision_ns)),
    )


def open_backend(
    kind: str, location: str, secret: Mapping[str, Any] | None = None, roots: LocalRoots | None = None
) -> Backend:
    """Build the backend for a stored source (kind + display location + decrypted secret); ``roots`` is
    where local sources may point (the server's and the CLI's policy; None only in tests of a backend)."""
    return kind_of(kind).factory(location, secret, roots)


def overlaps(kind_a: str, location_a: str, kind_b: str, location_b: str) -> bool:
    """One location is the other or inside it (the same files would be indexed twice)."""
    if kind_a != kind_b:
        return False
    extent = kind_of(kind_a).extent
    (volume_a, path_a), (volume_b, path_b) = extent(location_a), extent(location_b)
    if volume_a != volume_b:
        return False
    inner, outer = (path_a, path_b) if len(path_a) >= len(path_b) else (path_b, path_a)
    return inner == outer or not outer or inner.startswith(outer.rstrip("/") + "/")
