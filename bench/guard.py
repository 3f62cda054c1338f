"""The tests' loopback-only guard, on in every benchmark: ``import guard`` first thing. The benchmark and
every Python process it starts (the server, the CLI) can reach only this machine (127.0.0.1, ::1)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "guard"))

import loopback_guard  # type: ignore[import-not-found,unused-ignore]

loopback_guard.install()
