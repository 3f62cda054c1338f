"""Whether the process that holds a scan or a job lease still runs: asked of the OS for a process of
this host, left to heartbeats and leases for one elsewhere."""

from __future__ import annotations

import os
import socket
from typing import Literal

ProcessState = Literal["self", "running", "foreign", "gone", "elsewhere"]


def process_state(host: str | None, pid: int | None) -> ProcessState:
    """``self`` (this process), ``running`` (a process of that pid runs here, maybe a reused pid),
    ``foreign`` (it runs under another user), ``gone``, or ``elsewhere`` (another host, or no pid)."""
    if host != socket.gethostname() or not pid:
        return "elsewhere"
    if pid == os.getpid():
        return "self"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        return "foreign"
    return "running"
