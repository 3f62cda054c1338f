"""Credentials at rest: Fernet (AES-128-CBC + HMAC-SHA256) with a key that never lives in the catalog.

The key is ``MEDIAMESH_SECRET_KEY`` (any passphrase; a Fernet key is derived from it) or a key file made
in the data dir on first use, mode 0600. A wrong or missing key is a clear error, never garbage
credentials handed to a server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from mediamesh.config import Settings
from mediamesh.errors import ConfigurationError

KEY_FILE = "secret.key"


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)
        # A separate key for signatures, so that no signature can ever be turned against the encryption.
        self._signing_key = hashlib.sha256(b"mediamesh signed links\0" + key).digest()

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        if settings.secret_key:
            digest = hashlib.sha256(settings.secret_key.encode()).digest()
            return cls(base64.urlsafe_b64encode(digest))
        return cls(_key_file(settings.data_dir / KEY_FILE))

    def seal(self, secret: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(secret).encode())

    def sign(self, message: str) -> str:
        digest = hmac.new(self._signing_key, message.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def verify(self, message: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(message), signature)

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


def _key_file(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key
