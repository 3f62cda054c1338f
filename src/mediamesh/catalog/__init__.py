"""The catalog: sources, files (one row per location), media (one row per content id), scans."""

from mediamesh.catalog.database import Catalog

__all__ = ["Catalog"]
