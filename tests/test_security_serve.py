"""Findings 9 and 10 on a real ``mediamesh serve``: HTTPS by default beyond loopback (a self-signed
certificate made at first start, its fingerprint printed), HSTS under TLS, and X-Forwarded-For believed
only from proxies the admin names."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from mediamesh import tls
from tests.test_serve import free_port


def test_a_self_signed_certificate_is_made_once_and_kept_private(tmp_path: Path) -> None:
    made = tls.self_signed(tmp_path)
    assert made.made_now and stat.S_IMODE(made.key.stat().st_mode) == 0o600
    assert len(made.fingerprint.split(":")) == 32
    again = tls.self_signed(tmp_path)
    assert not again.made_now and again.fingerprint == made.fingerprint


@pytest.mark.parametrize(
    ("host", "setting", "https"),
    [("0.0.0.0", "auto", True), ("0.0.0.0", "off", False), ("127.0.0.1", "auto", False)],
)
def test_tls_is_on_beyond_loopback_unless_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: str, setting: str, https: bool
) -> None:
    from mediamesh.cli.main import app as cli

    seen: dict[str, Any] = {}

    def run(server: uvicorn.Server, sockets: list[socket.socket]) -> None:
        seen.update(vars(server.config))
        for sock in sockets:
            sock.close()

    monkeypatch.setattr(uvicorn.Server, "run", run)
    result = CliRunner().invoke(
        cli,
        [
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--host",
            host,
            "--port",
            str(free_port()),
            "--tls",
            setting,
        ],
    )
    assert result.exit_code == 0, result.output
    assert (seen["ssl_certfile"] is not None) is https
    assert seen["proxy_headers"] is False and seen["limit_concurrency"] >= 8
    output = result.output
    if https:
        assert "SHA-256 " in output and "https://" in output
    elif host == "0.0.0.0":
        assert "in clear" in output


@contextmanager
def serving(tmp_path: Path, **env: str) -> Iterator[int]:
    port = free_port()
    environ = {
        **os.environ,
        "MEDIAMESH_DATA_DIR": str(tmp_path / "data"),
        "MEDIAMESH_HOST": "127.0.0.1",
        "MEDIAMESH_PORT": str(port),
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mediamesh", "serve"], env=environ, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket_to(port):
                    break
            except OSError:
                time.sleep(0.2)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


@contextmanager
def socket_to(port: int) -> Iterator[None]:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=2):
        yield


def test_https_with_hsts(tmp_path: Path) -> None:
    cert = tls.self_signed(tmp_path / "certs")
    with serving(tmp_path, MEDIAMESH_TLS_CERT=str(cert.cert), MEDIAMESH_TLS_KEY=str(cert.key)) as port:
        context = ssl.create_default_context(cafile=str(cert.cert))
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        conn.request("GET", "/api/v1/health")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Strict-Transport-Security") == "max-age=31536000"
        conn.close()


def _status_with_forwarded_for(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/api/v1/health", headers={"X-Forwarded-For": "198.51.100.7"})
    status = conn.getresponse().status
    conn.close()
    return status


def test_a_local_client_cannot_pick_its_address(tmp_path: Path) -> None:
    """Only 127.0.0.1 is allowed. A forwarded address is ignored unless its proxy is trusted, and then
    it is the one judged (a documentation address, as text only: no traffic goes there)."""
    with serving(tmp_path / "a", MEDIAMESH_ALLOW="127.0.0.1/32") as port:
        assert _status_with_forwarded_for(port) == 200
    with serving(
        tmp_path / "b", MEDIAMESH_ALLOW="127.0.0.1/32", MEDIAMESH_TRUSTED_PROXIES="127.0.0.1"
    ) as port:
        assert _status_with_forwarded_for(port) == 403
