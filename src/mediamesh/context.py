"""The application context: settings plus the opened catalog. Built by a factory, never a module global."""

from __future__ import annotations

from dataclasses import dataclass, field

from mediamesh.catalog import Catalog
from mediamesh.config import Settings


@dataclass
class Context:
    settings: Settings
    catalog: Catalog = field(init=False)

    def __post_init__(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(self.settings.resolved_database_url)
        self.catalog.migrate()

    def close(self) -> None:
        self.catalog.close()


def create_context(settings: Settings | None = None) -> Context:
    return Context(settings or Settings())
