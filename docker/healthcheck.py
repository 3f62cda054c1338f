#!/opt/mediamesh/bin/python
"""HEALTHCHECK: GET /api/v1/health on this container's port; exit 0 when it answers 200.

HTTPS exactly when the server serves it (MEDIAMESH_TLS=auto beyond loopback, or a certificate given),
so that no probe is ever a plain request to a TLS port. The certificate is not verified: this is our
own loopback, and the default one is self-signed."""

import os
import ssl
import sys
import urllib.request

port = os.environ.get("MEDIAMESH_PORT", "8470")
host = os.environ.get("MEDIAMESH_HOST", "0.0.0.0")
loopback = host in ("127.0.0.1", "::1", "localhost")
tls = bool(os.environ.get("MEDIAMESH_TLS_CERT")) or (
    os.environ.get("MEDIAMESH_TLS", "auto") != "off" and not loopback
)
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/api/v1/health"
try:
    with urllib.request.urlopen(url, timeout=4, context=context) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError as exc:
    print(f"{url}: {exc}", file=sys.stderr)
    sys.exit(1)
