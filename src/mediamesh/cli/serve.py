"""``mediamesh serve``: open the catalog, recover abandoned scans, serve the API."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Any

import typer

from mediamesh.cli.output import err, fail


def serve(
    host: str | None = typer.Option(None, "--host", help="Address to listen on [MEDIAMESH_HOST]."),
    port: int | None = typer.Option(None, "--port", help="Port to listen on [MEDIAMESH_PORT]."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Data directory [MEDIAMESH_DATA_DIR]."),
    database_url: str | None = typer.Option(None, "--database-url", help="[MEDIAMESH_DATABASE_URL]"),
    allow: str | None = typer.Option(None, "--allow", help="CIDRs allowed to connect [MEDIAMESH_ALLOW]."),
    allowed_hosts: str | None = typer.Option(
        None, "--allowed-hosts", help="Host names answered [MEDIAMESH_ALLOWED_HOSTS]."
    ),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="PEM certificate [MEDIAMESH_TLS_CERT]."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="PEM private key [MEDIAMESH_TLS_KEY]."),
    tls: str | None = typer.Option(
        None, "--tls", help="auto (HTTPS beyond loopback) or off [MEDIAMESH_TLS]."
    ),
    local_roots: str | None = typer.Option(
        None, "--local-roots", help="Folders local sources may be in [MEDIAMESH_LOCAL_ROOTS]."
    ),
    trusted_proxies: str | None = typer.Option(
        None,
        "--trusted-proxies",
        help="Proxies whose X-Forwarded-For is believed [MEDIAMESH_TRUSTED_PROXIES].",
    ),
) -> None:
    """Run the server (the HTTP API) on the embedded catalog or the configured database."""
    import uvicorn
    from pydantic import ValidationError

    from mediamesh import tls as tls_mod
    from mediamesh.api.logging import uvicorn_log_config
    from mediamesh.config import Settings
    from mediamesh.errors import MediameshError
    from mediamesh.server import create_app
    from mediamesh.services.tokens import ADMIN_TOKEN_FILE, ensure_admin_token

    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "host": host,
            "port": port,
            "data_dir": data_dir,
            "database_url": database_url,
            "allow": allow,
            "allowed_hosts": allowed_hosts,
            "tls_cert": tls_cert,
            "tls_key": tls_key,
            "tls": tls,
            "local_roots": local_roots,
            "trusted_proxies": trusted_proxies,
        }.items()
        if v is not None
    }
    try:
        settings = Settings(**overrides)
        listener = _listen(settings.host, settings.port)
        app = create_app(settings)
    except MediameshError as exc:
        raise fail(exc.message) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = str(first.get("msg", "invalid setting")).removeprefix("Value error, ")
        raise fail(f"{where}: {message}" if where else message, 2) from None
    except ValueError as exc:
        raise fail(str(exc).splitlines()[0], 2) from None
    cert, key = settings.tls_cert, settings.tls_key
    if cert is None and settings.tls == "auto" and not tls_mod.is_loopback(settings.host):
        made = tls_mod.self_signed(settings.data_dir)
        cert, key = made.cert, made.key
        err.print(
            f"HTTPS with a self-signed certificate ({'made now' if made.made_now else 'made on first start'}, "
            f"{made.cert}). A browser will warn that it is not trusted: check that the fingerprint it shows is\n"
            f"  SHA-256 {made.fingerprint}\n"
            "then accept it (or give your own with MEDIAMESH_TLS_CERT and MEDIAMESH_TLS_KEY).",
            markup=False,
            highlight=False,
        )
    elif cert is None and not tls_mod.is_loopback(settings.host):
        err.print(
            "Warning: MEDIAMESH_TLS=off and listening beyond loopback: tokens and sessions cross the network "
            "in clear. Do this only behind a reverse proxy that serves HTTPS.",
            markup=False,
        )
    shown = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    scheme = "https" if cert else "http"
    err.print(
        f"mediamesh is listening on {scheme}://{shown}:{settings.port}/ "
        f"(catalog: {settings.data_dir.resolve()}); open it in a browser and sign in with a token",
        markup=False,
        highlight=False,
    )
    admin = ensure_admin_token(app.state.ctx)
    if admin is not None:
        err.print(
            "First start: an admin token was created. It is shown only now (and kept in "
            f"{settings.data_dir.resolve() / ADMIN_TOKEN_FILE}, mode 0600, until it is first used):",
            markup=False,
        )
        err.print(admin, markup=False, highlight=False)
    ssl: dict[str, Any] = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)} if cert else {}
    proxies = ",".join(p.strip() for p in settings.trusted_proxies.split(",") if p.strip())
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        log_config=uvicorn_log_config(),
        lifespan="on",
        # X-Forwarded-For only from proxies the admin names: else any local client picks its own address.
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        limit_concurrency=settings.max_connections,
        # Event streams and long content answers never end by themselves: on SIGTERM they get this many
        # seconds, then are cut, so that a browser left open never keeps the server from stopping.
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
        **ssl,
    )
    uvicorn.Server(config).run(sockets=[listener])


#: Seconds open answers get to finish when the server is asked to stop.
SHUTDOWN_GRACE = 5


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything is said or opened: a port another program holds is a
    clear message and exit code 2, not a server that says it listens and then dies with [Errno 98]."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise fail(
                f"port {port} on {host} is taken (another mediamesh serve, or another program); "
                f"pick another with --port N or MEDIAMESH_PORT=N",
                2,
            ) from None
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 2) from None
    sock.set_inheritable(True)
    return sock
