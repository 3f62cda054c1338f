"""The WebDAV view: every source, project and media item as one read-only share (see routes.py)."""
