"""Findings 2, 8 and 10 (readers): what a share holds is served as untrusted content, FFmpeg and Pillow
open only the format the content was recognised as, and a client that stops reading lets go of the file."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
import uvicorn
from fastapi.testclient import TestClient

from mediamesh.api import streaming
from mediamesh.context import Context
from mediamesh.server import create_app
from mediamesh.services import tokens as token_svc
from mediamesh.services.scans import run_scan
from mediamesh.services.sources import add_source
from tests.conftest import make_settings, write
from tests.helpers import scan_and_enrich
from tests.media_factory import h264_mp4

LOCAL = ("127.0.0.1", 40000)
SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg"><script>fetch("/api/v1/tokens",{method:"POST"})</script></svg>'
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, Context, dict[str, str]]]:
    library = tmp_path / "library"
    write(library / "evil.svg", SVG)
    write(library / "page.html", b"<html><script>alert(1)</script></html>")
    # A 46-byte ffconcat playlist named like a video: FFmpeg would follow it to other files.
    write(library / "trap.mp4", b"ffconcat version 1.0\nfile '/etc/hostname'\n")
    library.mkdir(parents=True, exist_ok=True)
    h264_mp4(library / "real.mp4")
    settings = make_settings(tmp_path, thumbnails="lazy")
    setup = Context(settings)
    add_source(setup, "disk", str(library), include=["*"])
    assert scan_and_enrich(setup, "disk")["status"] == "completed"
    setup.close()
    app = create_app(settings)
    with TestClient(app, client=LOCAL) as client:
        ctx = app.state.ctx
        headers = {"Authorization": f"Bearer {token_svc.create_token(ctx, 'r', 'read')[1]}"}
        yield client, ctx, headers


def media_of(client: TestClient, headers: dict[str, str], name: str) -> str:
    files = client.get("/api/v1/files", headers=headers).json()["data"]
    return str(next(f["media_id"] for f in files if f["path"] == name))


def test_documents_from_a_share_are_sandboxed_downloads(
    served: tuple[TestClient, Context, dict[str, str]],
) -> None:
    client, _, headers = served
    for name in ("evil.svg", "page.html"):
        response = client.get(f"/api/v1/media/{media_of(client, headers, name)}/content", headers=headers)
        assert response.status_code == 200 and response.content.startswith(b"<")
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["content-disposition"].startswith("attachment;")
        assert response.headers["content-security-policy"].startswith("sandbox;")
        assert response.headers["x-content-type-options"] == "nosniff"
    video = client.get(f"/api/v1/media/{media_of(client, headers, 'real.mp4')}/content", headers=headers)
    assert video.headers["content-type"] == "video/mp4"
    assert video.headers["content-disposition"].startswith("inline;")
    assert video.headers["content-security-policy"].startswith("sandbox;")


def test_a_playlist_named_like_a_video_is_never_decoded(
    served: tuple[TestClient, Context, dict[str, str]],
) -> None:
    client, ctx, headers = served
    trap = media_of(client, headers, "trap.mp4")
    shown = client.get(f"/api/v1/media/{trap}", headers=headers).json()
    assert shown["mime"] is None  # the probe did not recognise it, so nothing decodes it
    thumb = client.get(f"/api/v1/media/{trap}/thumbnail", headers=headers)
    assert thumb.status_code == 200 and thumb.headers.get("x-mediamesh-placeholder")
    assert thumb.headers["content-security-policy"].startswith("sandbox;")
    assert not list(ctx.settings.thumbnail_dir.glob(f"*/{trap}-*"))
    real = media_of(client, headers, "real.mp4")
    picture = client.get(f"/api/v1/media/{real}/thumbnail", headers=headers)
    assert picture.status_code == 200 and "x-mediamesh-placeholder" not in picture.headers


def test_open_av_refuses_what_the_sniffer_did_not_name() -> None:
    import io

    from mediamesh.metadata.probe import open_av

    playlist = io.BytesIO(b"ffconcat version 1.0\nfile 'x.mp4'\n")
    with pytest.raises(ValueError, match="not a container"):
        open_av(playlist, None)
    with pytest.raises(av.error.InvalidDataError):  # as an MP4 it is invalid data: concat is never tried
        open_av(playlist, "video/mp4")


def _open_fds_to(path: Path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                count += 1
        except OSError:
            continue
    return count


def test_a_reader_that_stops_reading_lets_go_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real server: a client asks for 64 MiB and reads nothing. After the send timeout its answer is
    abandoned and the file is closed; meanwhile one address cannot open more than its share of streams."""
    monkeypatch.setattr(streaming, "SEND_TIMEOUT", 1.0)
    library = tmp_path / "library"
    big = write(library / "big.mp4", os.urandom(1 << 20) * 64)
    settings = make_settings(tmp_path)
    setup = Context(settings)
    add_source(setup, "disk", str(library))
    assert run_scan(setup, "disk")["status"] == "completed"
    setup.close()
    app = create_app(settings)
    token = token_svc.create_token(app.state.ctx, "r", "read")[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        file_id = 1
        request = (
            f"GET /api/v1/files/{file_id}/content HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
        stalled = []
        for _ in range(16):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(request)
            stalled.append(sock)
        deadline = time.monotonic() + 10
        while _open_fds_to(big) < 16 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _open_fds_to(big) == 16
        with socket.create_connection(("127.0.0.1", port)) as extra:
            extra.sendall(request)
            assert b" 429 " in extra.recv(200).split(b"\r\n")[0] + b" "
        deadline = time.monotonic() + 15
        while _open_fds_to(big) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _open_fds_to(big) == 0  # every stalled answer gave its file back
        for sock in stalled:
            sock.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
