"""``mediamesh serve`` starts on an empty data dir, answers health, and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_starts_answers_health_and_stops(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "MEDIAMESH_DATA_DIR": str(tmp_path / "data"),
        "MEDIAMESH_HOST": "127.0.0.1",
        "MEDIAMESH_PORT": str(port),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mediamesh", "serve"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        body = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2) as resp:
                    body = json.loads(resp.read())
            except OSError:
                time.sleep(0.2)
        assert body is not None and body["status"] == "ok"
        assert (tmp_path / "data" / "catalog.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    # uvicorn finishes its shutdown, then re-raises SIGTERM so a supervisor sees why it stopped.
    assert proc.returncode in (0, -signal.SIGTERM), stderr
    assert "Application shutdown complete" in stderr
    assert f"http://127.0.0.1:{port}/" in stderr and "Traceback" not in stderr
    # The first start prints an admin token once; it works, and a second start does not print another.
    lines = stderr.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("First start: an admin token"))
    admin = next(line.strip() for line in lines[at + 1 :] if line.strip().startswith("mm_"))
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/sources", headers={"Authorization": f"Bearer {admin}"}
    )
    again = subprocess.Popen(
        [sys.executable, "-m", "mediamesh", "serve"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        sources = None
        while time.monotonic() < deadline and sources is None:
            try:
                with urllib.request.urlopen(request, timeout=2) as resp:
                    sources = json.loads(resp.read())
            except OSError:
                time.sleep(0.2)
        assert sources == {"data": [], "count": 0}
    finally:
        again.send_signal(signal.SIGTERM)
        _, second = again.communicate(timeout=20)
    assert "First start" not in second
