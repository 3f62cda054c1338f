"""TLS that a new user gets without work: a self-signed certificate made in the data dir on first start.

A token sent in clear on a LAN can be read by anyone on it, so ``mediamesh serve`` speaks HTTPS whenever
it listens beyond loopback, unless it is told otherwise (``MEDIAMESH_TLS=off``, for a reverse proxy that
terminates TLS). Without a certificate of the user's own, one is made here: an ECDSA P-256 key and a
self-signed certificate for this machine's names, valid for :data:`VALID_DAYS` days and made again when
it runs out. Its SHA-256 fingerprint is printed, so that the first "not trusted" warning of a browser can
be checked against it rather than clicked through blindly.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mediamesh.privatefs import write_private

VALID_DAYS = 825
FOLDER = "tls"


@dataclass(frozen=True, slots=True)
class Certificate:
    cert: Path
    key: Path
    fingerprint: str  # SHA-256, colon-separated hex, as browsers show it
    made_now: bool


def fingerprint_of(cert_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def _valid(cert_path: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return False
    return cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=1)


def self_signed(data_dir: Path) -> Certificate:
    """The data dir's certificate, made (or made again, when it runs out) here."""
    folder = data_dir / FOLDER
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    if key_path.exists() and _valid(cert_path):
        return Certificate(cert_path, key_path, fingerprint_of(cert_path), False)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    host = socket.gethostname() or "localhost"
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for name in {host, f"{host.split('.')[0]}.local"}:
        try:
            names.append(x509.DNSName(name))
        except ValueError:
            continue
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"mediamesh on {host}"[:64])])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return Certificate(cert_path, key_path, fingerprint_of(cert_path), True)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
