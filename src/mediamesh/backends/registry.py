"""The backend registry, in the spirit of rclone's ``fs.Register``: every source kind describes itself once.

A kind module (``backends/local.py``, ``backends/smb.py``) ends with ``register(BackendKind(...))``: its
URL schemes, how a location is parsed and shown, the form fields it takes (and which are secret), its
static :class:`~mediamesh.backends.base.Features`, who may reuse a stored secret, and the factory that
builds a backend. The CLI, the API, the UI's form and the importer read this registry; adding a kind is
one module plus its name in :data:`KIND_MODULES` and a run of the conformance suite.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mediamesh.backends.base import Backend, Features

if TYPE_CHECKING:
    from mediamesh.backends.local import LocalRoots

#: The built-in kinds: name -> (the module that registers it, its URL schemes). A module is imported only
#: when its kind is first asked for: a command on local folders never loads the SMB client (0.2 s).
KIND_MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "local": ("mediamesh.backends.local", ("file",)),
    "smb": ("mediamesh.backends.smb", ("smb",)),
    "sftp": ("mediamesh.backends.sftp", ("sftp",)),
    "nfs": ("mediamesh.backends.nfs", ("nfs",)),
}


@dataclass(frozen=True, slots=True)
class Option:
    """One field of a kind's location form; secret fields are stored encrypted and never shown."""

    name: str
    label: str
    required: bool = False
    secret: bool = False
    placeholder: str = ""
    help: str = ""
    numeric: bool = False
    #: A field of several lines (a private key): a text area on the form.
    multiline: bool = False
    #: Fields with the same row number share a line on the form.
    row: int = 0


#: Builds the backend of a stored source: (display location, decrypted secret, allowed local roots).
Factory = Callable[[str, Mapping[str, Any] | None, "LocalRoots | None"], Backend]


@dataclass(frozen=True, slots=True)
class BackendKind:
    name: str
    #: What the add-source form calls it.
    title: str
    #: URL schemes of its locations (a plain absolute path is ``file``).
    schemes: tuple[str, ...]
    #: The location syntax, shown in help and errors.
    example: str
    options: tuple[Option, ...]
    #: What every source of this kind can do, known without connecting (stored with each source).
    features: Features
    #: Location text -> the display form stored and shown; raises ValueError with a user's message.
    parse: Callable[[str], str]
    #: Display form -> form field values (the edit form), never a secret.
    fields: Callable[[str], dict[str, str]]
    #: Form field values -> location text (the add-source form); raises ValueError.
    compose: Callable[[Mapping[str, str]], str]
    factory: Factory
    #: What a stored secret was given for: it may be used again only for a location with the same scope.
    credential_scope: Callable[[str], tuple[Any, ...]] = field(default=lambda location: (location,))
    #: (the volume, the path within it) of a location: two sources overlap when they are on one volume
    #: and one path is the other's or below it (one file would count as two copies).
    extent: Callable[[str], tuple[tuple[Any, ...], str]] = field(default=lambda location: ((location,), ""))
    #: The location to store once a probe saw the source (its identity): a kind that trusts on first use
    #: (SFTP host keys) writes what it trusted into the location; the others keep it as it is.
    pin: Callable[[str, Mapping[str, str]], str] = field(default=lambda location, identity: location)
    #: For a kind whose folder may be a mount point (a share the host mounts): (location, expect_mount
    #: or None for the default, the parent folder of mounts) -> the identity a mounted source has
    #: (``{"mount_point": ...}``), or {} when no mount is expected. None: such kinds are never mounts.
    expected_mount: Callable[[str, bool | None, str | None], dict[str, str]] | None = None

    @property
    def secret_options(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.options if o.secret)

    def public(self) -> dict[str, Any]:
        """What the API shows about a kind (``GET /api/v1/sources/kinds``)."""
        return {
            "name": self.name,
            "title": self.title,
            "schemes": list(self.schemes),
            "example": self.example,
            "options": [
                {
                    "name": o.name,
                    "label": o.label,
                    "required": o.required,
                    "secret": o.secret,
                    "placeholder": o.placeholder,
                    "help": o.help,
                    "numeric": o.numeric,
                    "multiline": o.multiline,
                }
                for o in self.options
            ],
            "features": self.features.public(),
        }


class _Registry:
    """Kinds by name and by scheme. Filled once, at the first lookup; read-only afterwards."""

    def __init__(self) -> None:
        self._by_name: dict[str, BackendKind] = {}
        self._by_scheme: dict[str, BackendKind] = {}
        self._missing: dict[str, str] = {}
        self._lock = threading.Lock()

    def register(self, kind: BackendKind) -> None:
        with self._lock:
            if kind.name in self._by_name and self._by_name[kind.name] is not kind:
                raise ValueError(f"backend kind {kind.name!r} is registered twice")
            self._by_name[kind.name] = kind
            for scheme in kind.schemes:
                self._by_scheme[scheme] = kind

    def _load(self, name: str) -> None:
        if name in KIND_MODULES and name not in self._by_name and name not in self._missing:
            try:
                importlib.import_module(KIND_MODULES[name][0])  # it registers its kind
            except ImportError as exc:  # a client library without a build for this machine (nfs-rs)
                self._missing[name] = f"{exc.name or exc} is not installed for this machine"

    def unavailable(self, scheme_or_name: str) -> str | None:
        """Why a built-in kind cannot be used here (its client library is missing), or None."""
        for name, (_, schemes) in KIND_MODULES.items():
            if scheme_or_name == name or scheme_or_name in schemes:
                self._load(name)
                return self._missing.get(name)
        return None

    def kinds(self) -> list[BackendKind]:
        for name in KIND_MODULES:
            self._load(name)
        return [self._by_name[name] for name in KIND_MODULES if name in self._by_name] + [
            k for name, k in self._by_name.items() if name not in KIND_MODULES
        ]

    def get(self, name: str) -> BackendKind | None:
        self._load(name)
        return self._by_name.get(name)

    def for_scheme(self, scheme: str) -> BackendKind | None:
        for name, (_, schemes) in KIND_MODULES.items():
            if scheme in schemes:
                self._load(name)
        return self._by_scheme.get(scheme)


_registry = _Registry()
register = _registry.register
kinds = _registry.kinds
get = _registry.get
for_scheme = _registry.for_scheme
unavailable = _registry.unavailable
