"""A NAS that hangs while a player reads from it: the request for its content fails with 503 after the
SMB timeout, and meanwhile every other request of the real server answers at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediamesh.context import Context
from mediamesh.services import sources as source_svc
from mediamesh.services import tokens as token_svc
from mediamesh.services.scans import run_scan
from tests.conftest import b3sum, make_settings, write
from tests.servers.samba import PASSWORD, SambaServer
from tests.test_serve import free_port


@pytest.fixture
def own_samba(tmp_path: Path) -> Iterator[SambaServer]:
    server = SambaServer(tmp_path / "samba").start()
    yield server
    server.stop()


def get(
    url: str, token: str, headers: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.slow
def test_a_hung_nas_slows_only_its_own_content(tmp_path: Path, own_samba: SambaServer) -> None:
    share = own_samba.share_dir / uuid.uuid4().hex
    video = write(share / "film.mp4", 2_000_000)
    settings = make_settings(tmp_path)
    ctx = Context(settings)
    source_svc.add_source(ctx, "nas", own_samba.url(share.name), password=PASSWORD)
    assert run_scan(ctx, "nas")["status"] == "completed"
    _, token = token_svc.create_token(ctx, "player", "read")
    ctx.close()
    port = free_port()
    env = {
        **os.environ,
        "MEDIAMESH_DATA_DIR": str(settings.data_dir),
        "MEDIAMESH_HOST": "127.0.0.1",
        "MEDIAMESH_PORT": str(port),
        "MEDIAMESH_HEALTH_INTERVAL": "3600",
    }
    server = subprocess.Popen([sys.executable, "-m", "mediamesh", "serve"], env=env, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}/api/v1"
    content = f"{base}/media/{b3sum(video)[video]}/content"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(f"{base}/health", token, timeout=2)[0] == 200:
                    break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        status, body = get(content, token, {"Range": "bytes=0-99"})  # connects to the NAS
        assert (status, body) == (206, video.read_bytes()[:100])

        own_samba.pause()
        outcome: dict[str, object] = {}

        def play() -> None:
            started = time.monotonic()
            outcome["status"], outcome["body"] = get(content, token, {"Range": "bytes=1000000-1099999"})
            outcome["seconds"] = time.monotonic() - started

        player = threading.Thread(target=play)
        player.start()
        time.sleep(0.5)  # the player's request now waits on the hung NAS
        for path in ("/health", "/media", "/sources", "/files", "/scans"):
            started = time.monotonic()
            assert get(base + path, token, timeout=10)[0] == 200, path
            assert time.monotonic() - started < 1.0, path
        assert player.is_alive(), "the content request should still be waiting on the hung NAS"
        player.join(60)
        assert outcome["status"] == 503, outcome
        assert "nas" in json.loads(outcome["body"])["error"]["message"]  # type: ignore[arg-type]
        assert 3 < outcome["seconds"] < 40  # type: ignore[operator]

        own_samba.resume()
        deadline = time.monotonic() + 40
        while (status := get(content, token, {"Range": "bytes=0-9"})[0]) != 206:
            assert time.monotonic() < deadline, status
            time.sleep(1)
    finally:
        own_samba.resume()
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
