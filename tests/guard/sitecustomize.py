"""Guards a Python process started by a test or a benchmark (see loopback_guard.py)."""

import os

if os.environ.get("MEDIAMESH_LOOPBACK_ONLY") == "1":
    import loopback_guard  # type: ignore[import-not-found,unused-ignore]

    loopback_guard.install()
