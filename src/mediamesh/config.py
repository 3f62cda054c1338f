"""Settings, read from ``MEDIAMESH_*`` environment variables (and ``mediamesh serve`` flags)."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_ALLOW = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7,fe80::/10"


#: Where local sources may be by default: the media folders of the user running mediamesh, and the usual
#: places for mounted disks and shares (in the container, /mnt/sources is below /mnt).
DEFAULT_HOME_ROOTS = ("Pictures", "Videos", "Movies", "Music")
DEFAULT_SYSTEM_ROOTS = ("/mnt", "/media", "/srv")


class Settings(BaseSettings):
    """Every setting has a default that is safe for a home LAN; see docs/configuration.md."""

    model_config = SettingsConfigDict(env_prefix="MEDIAMESH_", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Catalog, keys and thumbnails.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; default SQLite in the data dir. postgresql+psycopg://... for scale.",
    )
    host: str = Field("0.0.0.0", description="Address the API listens on.")
    port: int = Field(8470, ge=1, le=65535, description="Port the API listens on.")
    allow: str = Field(DEFAULT_ALLOW, description="Comma-separated CIDRs allowed to reach the API.")
    allowed_hosts: str = Field(
        "",
        description=(
            "Comma-separated host names the API answers to, besides IP addresses, localhost and this "
            "machine's name (against DNS rebinding); '*' answers any name."
        ),
    )
    trusted_proxies: str = Field(
        "",
        description="Comma-separated addresses of reverse proxies whose X-Forwarded-For is believed; none by default.",
    )
    tls: str = Field(
        "auto",
        pattern="^(auto|off)$",
        description=(
            "auto: HTTPS whenever the server listens beyond loopback, with MEDIAMESH_TLS_CERT or else a "
            "self-signed certificate made in the data dir; off: plain HTTP (behind a proxy with TLS)."
        ),
    )
    discovery: str = Field(
        "on",
        pattern="^(on|off)$",
        description=(
            "on: the add-source page and `mediamesh discover` listen for NAS and shares announced on the LAN "
            "(mDNS, WS-Discovery) and ask those hosts for their shares; off: nothing is sent or listened for."
        ),
    )
    max_connections: int = Field(
        512, ge=8, le=100_000, description="Connections served at once; more are answered 503."
    )
    public_url: str | None = Field(
        None,
        description="The address people and players reach the server at (https://media.home.lan): signed "
        "links are made with it. Default: the address of the request that asks for the link.",
    )
    tls_cert: Path | None = Field(None, description="PEM certificate: serve HTTPS (with MEDIAMESH_TLS_KEY).")
    tls_key: Path | None = Field(None, description="PEM private key of the certificate.")
    local_roots: str = Field(
        "",
        description=(
            "Comma-separated folders that local sources may be in (default: ~/Pictures, ~/Videos, "
            "~/Movies, ~/Music, /mnt, /media, /srv). Never the data dir or a system folder."
        ),
    )
    secret_key: str | None = Field(
        None, description="Key that encrypts stored credentials (default: a 0600 key file in the data dir)."
    )
    settle_seconds: float = Field(
        10.0, ge=0, description="Files modified more recently than this are deferred to a later scan."
    )
    missing_threshold_ratio: float = Field(
        0.25,
        ge=0,
        le=1,
        description="A scan that would mark more than this share of known files missing stops.",
    )
    missing_threshold_min: int = Field(
        50, ge=0, description="...but only when at least this many files would become missing."
    )
    hash_workers: int = Field(2, ge=1, le=64, description="Files fingerprinted and hashed at once.")
    health_interval: float = Field(60.0, gt=0, description="Seconds between health probes of every source.")
    sources_file: Path | None = Field(
        None, description="A sources.yaml applied on start (default: sources.yaml in the data dir, if there)."
    )
    max_scans: int = Field(2, ge=1, le=32, description="Scans the server runs at once; more wait in a queue.")
    thumbnails: str = Field(
        "eager",
        pattern="^(eager|lazy|off)$",
        description="eager: made in the scan; lazy: on first request; off: placeholders only.",
    )
    watch_poll_interval: float = Field(
        60.0,
        ge=5,
        le=86400,
        description="Seconds between polls of folder signatures, for watched sources without change "
        "notifications (NFS, SFTP, network mounts).",
    )
    watch_reconcile_hours: float = Field(
        24.0,
        ge=0,
        description="A watched source with no schedule of its own gets a full scan this often (0: never), "
        "so that a change the watch missed is never a lost file.",
    )
    webhook_allow: str = Field(
        "",
        description="Where webhooks may send events: comma-separated networks (192.168.1.0/24) and host "
        "names; empty: no webhook can be registered.",
    )
    mounts_dir: Path | None = Field(
        None,
        description="The folder where shares are mounted, by the host (a parent directory bind-mounted "
        "once) or by mediamesh (MEDIAMESH_MOUNT_SHARES): a local source directly in it must be a mount "
        "point, and reads as 'not mounted' when it is not. The container image sets /mnt/sources.",
    )
    mount_shares: str = Field(
        "off",
        pattern="^(on|off)$",
        description="on: mediamesh mounts SMB and NFS sources added with --kernel-mount itself, with the "
        "kernel's client, at MEDIAMESH_MOUNTS_DIR/{name} (needs root or CAP_SYS_ADMIN; docs/deploy.md, "
        "option A). off: never mounts anything.",
    )
    commit_batch: int = Field(5000, ge=1, description="Catalog rows written per transaction during a scan.")
    task_engine: str = Field(
        "auto",
        pattern="^(auto|embedded|procrastinate)$",
        description="Who runs jobs. embedded: the server's own threads (SQLite's only choice). "
        "procrastinate: the procrastinate task engine over the PostgreSQL catalog, so that "
        "`mediamesh worker` processes can share the work (docs/scale-out.md). auto: procrastinate on "
        "PostgreSQL, embedded on SQLite.",
    )
    job_lease_seconds: float = Field(
        60.0,
        ge=3,
        le=3600,
        description="A running job whose process stops renewing it for this long is taken over by another "
        "runner (a worker killed mid-scan); workers also send heartbeats this often divided by six.",
    )

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(
                f"MEDIAMESH_PUBLIC_URL must look like https://host[:port][/prefix], not {value!r}"
            )
        return value.strip().rstrip("/")

    @field_validator("allow", "trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError as exc:
                raise ValueError(f"{part!r} is not an address or CIDR") from exc
        return value

    @field_validator("local_roots")
    @classmethod
    def _absolute_roots(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            if not Path(part).expanduser().is_absolute():
                raise ValueError(f"MEDIAMESH_LOCAL_ROOTS: {part!r} is not an absolute path")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("MEDIAMESH_TLS_CERT and MEDIAMESH_TLS_KEY go together: give both or neither")
        for path in (self.tls_cert, self.tls_key):
            if path is not None and not path.is_file():
                raise ValueError(f"TLS file {path} does not exist or is not a file")
        return self

    @model_validator(mode="after")
    def _engine_needs_postgres(self) -> Settings:
        if self.task_engine == "procrastinate" and not self.resolved_database_url.startswith("postgresql"):
            raise ValueError(
                "MEDIAMESH_TASK_ENGINE=procrastinate needs a PostgreSQL catalog (MEDIAMESH_DATABASE_URL)"
            )
        return self

    @property
    def local_root_paths(self) -> list[Path]:
        if self.local_roots.strip():
            return [Path(p.strip()).expanduser() for p in self.local_roots.split(",") if p.strip()]
        home = Path.home()
        return [*(home / d for d in DEFAULT_HOME_ROOTS), *(Path(p) for p in DEFAULT_SYSTEM_ROOTS)]

    @property
    def thumbnail_dir(self) -> Path:
        return self.data_dir / "thumbnails"

    @property
    def host_names(self) -> list[str]:
        """The names the Host header may carry ('*': any); IP addresses are always answered."""
        given = [h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip()]
        if "*" in given:
            return []
        machine = socket.gethostname().lower()
        own = {"localhost", machine, machine.split(".")[0], f"{machine.split('.')[0]}.local"}
        return sorted(own | set(given))

    @property
    def uses_task_engine(self) -> bool:
        """Jobs go through procrastinate (PostgreSQL catalog, unless told to stay embedded)."""
        return self.resolved_database_url.startswith("postgresql") and self.task_engine != "embedded"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'catalog.db').resolve()}"
