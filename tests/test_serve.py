"""``mediamesh serve`` starts on an empty data dir, answers health, and stops cleanly on SIGTERM."""

from __future__ import annotations

import http.client
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


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_serve_over_tls(tmp_path: Path) -> None:
    import ssl

    cert, key = _self_signed(tmp_path)
    port = free_port()
    env = {
        **os.environ,
        "MEDIAMESH_DATA_DIR": str(tmp_path / "data"),
        "MEDIAMESH_HOST": "127.0.0.1",
        "MEDIAMESH_PORT": str(port),
    }
    command = [sys.executable, "-m", "mediamesh", "serve", "--tls-cert", str(cert), "--tls-key", str(key)]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    trusted = ssl.create_default_context(cafile=str(cert))
    trusted.check_hostname = False  # the certificate names localhost; we connect to 127.0.0.1 only
    try:
        body = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and body is None:
            try:
                url = f"https://127.0.0.1:{port}/api/v1/health"
                with urllib.request.urlopen(url, timeout=2, context=trusted) as resp:
                    body = json.loads(resp.read())
            except OSError:
                time.sleep(0.2)
        assert body is not None and body["status"] == "ok"
        try:  # plain HTTP on the TLS port is not answered as HTTP
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
            raise AssertionError("plain HTTP was answered")
        except (OSError, http.client.HTTPException):
            pass
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    assert f"https://127.0.0.1:{port}/" in stderr


def test_serve_refuses_half_a_tls_setting(tmp_path: Path) -> None:
    cert, _ = _self_signed(tmp_path)
    env = {**os.environ, "MEDIAMESH_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run(
        [sys.executable, "-m", "mediamesh", "serve", "--tls-cert", str(cert)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "give both or neither" in result.stderr and "Traceback" not in result.stderr


def test_a_taken_port_is_a_clear_message(tmp_path: Path) -> None:
    """A second server (or any program) on the port: one line naming the port and how to pick another,
    exit code 2, before anything claims to listen."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {**os.environ, "MEDIAMESH_DATA_DIR": str(tmp_path / "data"), "MEDIAMESH_HOST": "127.0.0.1"}
        result = subprocess.run(
            [sys.executable, "-m", "mediamesh", "serve", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2, result.stderr
    assert f"port {port} on 127.0.0.1 is taken" in result.stderr and "--port" in result.stderr
    assert "listening" not in result.stderr and "Traceback" not in result.stderr
