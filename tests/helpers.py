"""Small helpers the scan tests share: reading the catalog back, and a fault-injecting backend."""

from __future__ import annotations

from typing import Any, BinaryIO

from sqlalchemy import select

from mediamesh.backends.base import Backend, Entry, PermissionDeniedError
from mediamesh.catalog.schema import files
from mediamesh.context import Context


def rows(ctx: Context) -> dict[str, Any]:
    """path -> file row, for every location in the catalog."""
    with ctx.catalog.read() as conn:
        return {r.path: r for r in conn.execute(select(files).order_by(files.c.path))}


class FaultyBackend(Backend):
    """Wraps a real backend; folders in ``unlistable`` fail to list, ``on_open`` runs before each open."""

    def __init__(self, inner: Backend, unlistable: set[str] | None = None) -> None:
        self.inner = inner
        self.unlistable = unlistable or set()
        self.features = inner.features
        self.on_open: Any = None

    def list_dir(self, path: str) -> list[Entry]:
        if path in self.unlistable:
            raise PermissionDeniedError(f"permission denied: {path}", path)
        return self.inner.list_dir(path)

    def stat(self, path: str) -> Entry:
        return self.inner.stat(path)

    def open(self, path: str) -> BinaryIO:
        if self.on_open is not None:
            self.on_open(path)
        return self.inner.open(path)

    def identity(self) -> dict[str, str]:
        return self.inner.identity()

    def usage(self) -> tuple[int | None, int | None]:
        return self.inner.usage()

    def local_path(self, path: str) -> str | None:
        return self.inner.local_path(path)


def scan_and_enrich(ctx: Context, name: str, **kwargs: Any) -> dict[str, Any]:
    """Both phases of ``mediamesh scan`` in this thread: the index, then enrichment (as ``metadata``)."""
    from mediamesh.services import scans as scan_svc
    from mediamesh.services import sources as source_svc

    summary = scan_svc.run_scan(ctx, name, **kwargs)
    source_id = source_svc.show_source(ctx, name)["id"]
    summary["metadata"] = scan_svc.run_enrichment(ctx, source_id)
    return summary
