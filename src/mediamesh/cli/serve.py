"""``mediamesh serve``: open the catalog, recover abandoned scans, serve the API."""

from __future__ import annotations

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
) -> None:
    """Run the server (the HTTP API) on the embedded catalog or the configured database."""
    import uvicorn
    from pydantic import ValidationError

    from mediamesh.api.app import create_app
    from mediamesh.config import Settings
    from mediamesh.errors import MediameshError
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
        }.items()
        if v is not None
    }
    try:
        settings = Settings(**overrides)
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
    shown = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    scheme = "https" if settings.tls_cert else "http"
    err.print(
        f"mediamesh is listening on {scheme}://{shown}:{settings.port}/ "
        f"(catalog: {settings.data_dir.resolve()}); open it in a browser and sign in with a token"
    )
    admin = ensure_admin_token(app.state.ctx)
    if admin is not None:
        err.print(
            "First start: an admin token was created. It is shown only now (and kept in "
            f"{settings.data_dir.resolve() / ADMIN_TOKEN_FILE}, mode 0600):"
        )
        err.print(admin, markup=False, highlight=False)
    tls: dict[str, Any] = (
        {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}
        if settings.tls_cert
        else {}
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", lifespan="on", **tls)
