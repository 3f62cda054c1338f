"""Files only their owner may read (keys, tokens, certificates, the catalog), made so that nothing planted
in their place is followed: ``O_EXCL`` with ``O_NOFOLLOW``, mode 0600 from the first byte."""

from __future__ import annotations

import os
from pathlib import Path

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def create_private(path: Path, data: bytes = b"") -> bool:
    """Create ``path`` with ``data`` unless something is there already (then False, nothing written)."""
    try:
        fd = os.open(path, _FLAGS, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return True


def write_private(path: Path, data: bytes) -> None:
    """Replace whatever is at ``path`` (a left-over, or a link planted there) with a new private file."""
    path.unlink(missing_ok=True)
    if not create_private(path, data):  # another process made it between the two calls
        raise FileExistsError(f"{path} appeared while it was being written")
