"""Credentials at rest: Fernet (AES-128-CBC + HMAC-SHA256) with a key that never lives in the catalog.

The key is ``MEDIAMESH_SECRET_KEY`` (any passphrase; a Fernet key is derived from it) or a key file made
in the data dir on first use, mode 0600. A wrong or missing key is a clear error, never garbage
credentials handed to a server.

Signatures (browser sessions, CSRF tokens, signed links) use a key of their own, ``signing.key`` in the
data dir: knowing one key gives nothing of the other (a leaked credential key forges no session, a
leaked signing key decrypts no NAS password).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from mediamesh.config import Settings
from mediamesh.errors import ConfigurationError
from mediamesh.privatefs import create_private

KEY_FILE = "secret.key"
SIGNING_KEY_FILE = "signing.key"


class Signer:
    """HMAC-SHA256 signatures with the data dir's signing key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_settings(cls, settings: Settings) -> Signer:
        return cls(_key_file(settings.data_dir / SIGNING_KEY_FILE, lambda: secrets.token_bytes(32).hex()))

    def sign(self, message: str) -> str:
        digest = hmac.new(self._key, message.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def verify(self, message: str, signature: str) -> bool:
        """Constant time; any text (non-ASCII included) is simply not a valid signature."""
        return hmac.compare_digest(self.sign(message).encode(), signature.encode("utf-8", "replace"))


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        if settings.secret_key:
            digest = hashlib.sha256(settings.secret_key.encode()).digest()
            return cls(base64.urlsafe_b64encode(digest))
        return cls(_key_file(settings.data_dir / KEY_FILE, lambda: Fernet.generate_key().decode()))

    def seal(self, secret: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(secret).encode())

    def open(self, token: bytes) -> dict[str, Any]:
        try:
            value = json.loads(self._fernet.decrypt(token))
        except InvalidToken:
            raise ConfigurationError(
                "stored credentials cannot be decrypted with this key: is MEDIAMESH_SECRET_KEY (or the data "
                "dir's secret.key) the one they were saved with?"
            ) from None
        if not isinstance(value, dict):
            raise ConfigurationError("stored credentials are damaged")
        return value


def _read_key(path: Path) -> bytes:
    """A key file's content; a symbolic link in its place is refused, never followed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ConfigurationError(f"cannot read the key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        return fh.read().strip()


def _key_file(path: Path, new_key: Callable[[], str]) -> bytes:
    """The key in ``path``, made on first use: created exclusively (O_EXCL, no link followed), mode 0600."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = new_key().encode()
    if not create_private(path, key):  # another process made it first
        return _read_key(path)
    return key
