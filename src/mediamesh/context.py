"""The application context: settings, the opened catalog and everything long-lived that hangs off it
(live backends, query caches, the signer). Built by a factory, never a module global."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from mediamesh.backends import open_backend
from mediamesh.backends.base import Backend
from mediamesh.backends.connections import Connections
from mediamesh.backends.kernel_mounts import KernelMounts, SystemRunner
from mediamesh.backends.local import LocalRoots
from mediamesh.catalog import Catalog
from mediamesh.catalog.cache import QueryCaches
from mediamesh.config import Settings
from mediamesh.crypto import SecretBox, Signer


@dataclass
class Context:
    settings: Settings
    catalog: Catalog = field(init=False)
    #: Where local sources may point (MEDIAMESH_LOCAL_ROOTS), and what they may never reach.
    local_roots: LocalRoots = field(init=False)
    #: Signs sessions, CSRF tokens and links (its own key, apart from the credential key).
    signer: Signer = field(init=False)
    #: The live backend of every source in use, shared by probes, content, scans and whereis.
    connections: Connections = field(init=False)
    #: Caches of query results, valid while the catalog's write generation holds.
    caches: QueryCaches = field(init=False)
    #: Shares this process mounted with the kernel's client (MEDIAMESH_MOUNT_SHARES, option A).
    kernel_mounts: KernelMounts = field(init=False)
    #: This process is the scan worker of this name (``mediamesh worker --name``): a source that maps a
    #: path for it (``worker_paths``) is read there, as a local folder, at disk speed.
    worker_name: str | None = None

    def __post_init__(self) -> None:
        make_data_dir(self.settings.data_dir)
        self.catalog = Catalog(self.settings.resolved_database_url)
        self.catalog.migrate()
        self.catalog.dispatch = self.settings.uses_task_engine
        self.local_roots = local_roots_of(self.settings)
        self.signer = Signer.from_settings(self.settings)
        self.connections = Connections(self._backend_of)
        self.caches = QueryCaches()
        self.kernel_mounts = KernelMounts(
            SystemRunner(), self.settings.data_dir / "mounts", enabled=self.settings.mount_shares == "on"
        )

    def secret_of(self, row: Any) -> dict[str, Any] | None:
        """A stored source's credentials, decrypted only for the use at hand."""
        return SecretBox.from_settings(self.settings).open(row.secret) if row.secret else None

    def _backend_of(self, row: Any) -> Backend:
        path = mapped_path(row, self.worker_name)
        if path is not None:  # the share as this worker sees it, within this worker's MEDIAMESH_LOCAL_ROOTS
            return open_backend("local", path, None, self.local_roots)
        return open_backend(row.kind, row.location, self.secret_of(row), self.local_roots)

    def close(self) -> None:
        self.connections.close()
        self.catalog.close()


def mapped_path(row: Any, worker_name: str | None) -> str | None:
    """Where the worker ``worker_name`` reads this source as a local folder, if the source says so."""
    if worker_name is None:
        return None
    found = ((row.options or {}).get("worker_paths") or {}).get(worker_name)
    return str(found) if found else None


def make_data_dir(path: Path) -> None:
    """The data dir holds keys, tokens and the catalog: only its owner may enter it (0700)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)


def local_roots_of(settings: Settings) -> LocalRoots:
    protected = [settings.data_dir]
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        protected.append(Path(url.database))  # a source must not hold the catalog (or its -wal beside it)
    protected += [p for p in (settings.tls_cert, settings.tls_key, settings.sources_file) if p is not None]
    return LocalRoots(
        allowed=tuple(os.path.realpath(p) for p in settings.local_root_paths),
        protected=tuple(os.path.realpath(p) for p in protected),
    )


def create_context(settings: Settings | None = None, worker_name: str | None = None) -> Context:
    return Context(settings or Settings(), worker_name=worker_name)
