"""Tables, declared once as SQLAlchemy Core metadata; migrations in ``migrations/`` create them.

Design notes:
- ``files`` has one row per location. ``dir_key``/``name_key`` are the Unicode-normalised (NFC, and
  case-folded on case-insensitive sources) forms of the folder and name, so that a name arriving in NFD
  from macOS or Synology maps to the same row; ``path`` keeps the name as the source spells it.
- ``state`` is ``present`` or ``missing``; ``offline`` is derived from the source's health at query time,
  never written to every row.
- ``vanished_scan_id`` marks rows a running scan did not find; they become ``missing`` only when that scan
  completes on a verified source (see scanning/pipeline.py).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid; PostgreSQL wants BIGINT for large catalogs.
BigId = BigInteger().with_variant(Integer(), "sqlite")
#: Text that sorts by its bytes on PostgreSQL too, whatever the database's collation: a folder's rows are
#: the key range [folder + "/", folder + "0") (scanning/names.py), true in byte order only (migration 0012).
ByteOrder = Text().with_variant(Text(collation="C"), "postgresql")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

sources = Table(
    "sources",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("location", Text, nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("options", JSON, nullable=False, default=dict),
    Column("identity", JSON, nullable=False, default=dict),
    Column("secret", LargeBinary, nullable=True),
    Column("health_status", String(16), nullable=False, default="unknown"),
    Column("health_checked_at", DateTime(timezone=True), nullable=True),
    Column("health_error", Text, nullable=True),
    Column("health_latency_ms", Float, nullable=True),
    Column("health_capacity_bytes", BigInteger, nullable=True),
    Column("health_free_bytes", BigInteger, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    #: Features decided at registration (case sensitivity, mtime precision, file ids): see backends.
    Column("features", JSON, nullable=False, default=dict, server_default="{}"),
)

#: The live side of a source (the concept's SourceMount): written by the process that holds the connection.
source_mounts = Table(
    "source_mounts",
    metadata,
    Column("source_id", Integer, ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True),
    Column("state", String(16), nullable=False),  # connected | disconnected | error
    Column("endpoint", Text, nullable=True),
    Column("connected_since", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("holder", String(255), nullable=True),  # host:pid of the process holding the connection
    Column("updated_at", DateTime(timezone=True), nullable=False),
    #: How the holder learns of changes: {"mode": notify|inotify|poll|off, "folders", "interval", "reason"}.
    Column("watch", JSON, nullable=True),
)

#: API tokens: only a SHA-256 of each token is stored; the token itself is shown once, when created.
tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False),
    Column("scope", String(8), nullable=False),  # read < write < admin
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(12), nullable=False),  # the first characters, to recognise a token in a list
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    #: ``{"sources": [names], "projects": [names]}``: the token sees only those, in the WebDAV view only.
    Column("limits", JSON, nullable=True),
)

media = Table(
    "media",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    # Filled by the extract stage once per media id (any copy will do): from the content, not the name.
    Column("mime", String(100), nullable=True),
    Column("width", Integer, nullable=True),  # as displayed (EXIF orientation applied)
    Column("height", Integer, nullable=True),
    Column("duration", Float, nullable=True),  # seconds
    Column("codec", String(32), nullable=True),  # of the first video stream, else the first audio one
    Column("taken_at", DateTime(timezone=True), nullable=True),  # capture or creation time, if known
    Column("camera", String(200), nullable=True),  # make and model
    Column("info", JSON, nullable=True),  # everything else: container, streams, tags, EXIF, GPS
    Column("metadata_error", Text, nullable=True),
    Column("metadata_at", DateTime(timezone=True), nullable=True),
    Column("metadata_bytes", BigInteger, nullable=True),  # bytes read to learn all this
    Index(None, "metadata_at"),
)

scans = Table(
    "scans",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source_id", Integer, ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    Column("path", Text, nullable=False, default=""),
    Column("trigger", String(16), nullable=False, default="cli", server_default="cli"),
    Column("status", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("heartbeat_at", DateTime(timezone=True), nullable=True),
    Column("host", String(255), nullable=True),
    Column("pid", Integer, nullable=True),
    Column("files_seen", BigInteger, nullable=False, default=0),
    Column("files_new", BigInteger, nullable=False, default=0),
    Column("files_changed", BigInteger, nullable=False, default=0),
    Column("files_moved", BigInteger, nullable=False, default=0),
    Column("files_missing", BigInteger, nullable=False, default=0),
    Column("files_unchanged", BigInteger, nullable=False, default=0),
    Column("files_deferred", BigInteger, nullable=False, default=0),
    Column("bytes_hashed", BigInteger, nullable=False, default=0),
    Column("bytes_read", BigInteger, nullable=False, default=0),
    Column("errors_count", Integer, nullable=False, default=0),
    Column("errors", JSON, nullable=False, default=list),
    Column("error", Text, nullable=True),
    Column("current_path", Text, nullable=True),
    Index(None, "source_id", "status"),
)

files = Table(
    "files",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("source_id", Integer, ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    Column("path", ByteOrder, nullable=False),
    Column("dir_key", ByteOrder, nullable=False),
    Column("name_key", ByteOrder, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("file_id", String(64), nullable=True),
    Column("quick_fp", String(32), nullable=False),
    Column("media_id", String(64), ForeignKey("media.id"), nullable=False),
    Column("state", String(16), nullable=False, default="present"),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("missing_since", DateTime(timezone=True), nullable=True),
    Column("vanished_scan_id", Integer, nullable=True),
    # The scan that last added, changed or moved this location: the assign stage looks at those only.
    Column("changed_scan_id", Integer, nullable=True),
    UniqueConstraint("source_id", "dir_key", "name_key"),
    Index(None, "media_id"),
    Index(None, "source_id", "size", "quick_fp"),
    Index(None, "source_id", "file_id"),
    Index(None, "source_id", "path"),
    Index(None, "source_id", "state"),  # per-source file counts from the index (migration 0008)
    Index(None, "vanished_scan_id"),
    Index(None, "changed_scan_id"),
)

#: Templates that make projects by themselves: ``Projects/{project}/**`` makes one per folder name found.
project_templates = Table(
    "project_templates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("path", Text, nullable=False, unique=True),
    Column("sources", JSON, nullable=False, default=list),  # source ids; empty: every source
    Column("kinds", JSON, nullable=False, default=list),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("origin", String(16), nullable=False, default="manual"),  # manual | template | import
    # Set when a template made the project; it stays (maybe empty) when the template or its files go.
    Column("template_id", Integer, ForeignKey("project_templates.id", ondelete="SET NULL"), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: A rule matches locations; the media of every matching location is in the project.
project_rules = Table(
    "project_rules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("spec", JSON, nullable=False),  # path glob, sources, kinds, extensions, size and date ranges
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "project_id"),
)

#: Why a media item is in a project: a rule or a template through one location, or a manual addition
#: (no rule, no location). Rows of rules and templates are derived (recomputed from the catalog alone).
project_members = Table(
    "project_members",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("media_id", String(64), ForeignKey("media.id"), nullable=False),
    Column("rule_id", Integer, ForeignKey("project_rules.id", ondelete="CASCADE"), nullable=True),
    Column("template_id", Integer, ForeignKey("project_templates.id", ondelete="CASCADE"), nullable=True),
    Column("file_id", BigId, ForeignKey("files.id", ondelete="CASCADE"), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "project_id", "media_id"),
    Index(None, "media_id"),
    Index(None, "file_id"),
    Index(None, "rule_id"),
    Index(None, "template_id"),
)

#: A manual removal: the media stays out of the project whatever the rules say (until added again).
project_exclusions = Table(
    "project_exclusions",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("media_id", String(64), ForeignKey("media.id"), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

#: Durable work: scans, enrichment and project assignment, claimed by one runner at a time under a lease
#: that a timer renews; a runner that dies stops renewing and another (or the next start) takes the job.
#: ``key`` serialises jobs on one thing (``scan:3``): one queued per key, and never two running at once.
jobs = Table(
    "jobs",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("key", String(200), nullable=True),
    Column("source_id", Integer, ForeignKey("sources.id", ondelete="CASCADE"), nullable=True),
    Column("payload", JSON, nullable=False, default=dict),
    Column("state", String(16), nullable=False),  # queued, running, completed, failed, cancelled
    Column("priority", Integer, nullable=False, default=0),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False, default=3),
    Column("run_after", DateTime(timezone=True), nullable=False),
    Column("lease_owner", String(200), nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
    Column("heartbeat_at", DateTime(timezone=True), nullable=True),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("trigger", String(16), nullable=False, default="api"),
    Column("progress", JSON, nullable=False, default=dict),
    Column("result", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Index(None, "state", "run_after"),
    Index(None, "key", "state"),
    Index(None, "source_id"),
    Index(
        "uq_jobs_key_queued",
        "key",
        unique=True,
        sqlite_where=text("state = 'queued'"),
        postgresql_where=text("state = 'queued'"),
    ),
)

#: Processes that run jobs (the server, later workers), with their heartbeat: the CLI asks whether one is
#: alive before it leaves enrichment to it.
workers = Table(
    "workers",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("kinds", JSON, nullable=False, default=list),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("name", String(200), nullable=True),
    Column("role", String(16), nullable=False, default="server", server_default="server"),
    Column("sources", JSON, nullable=True),  # source ids served; NULL: every source
)

#: Shared counters; ``generation`` advances with every write transaction of any process, so caches of
#: query results in one process notice writes by another (a CLI scan beside the server).
catalog_state = Table(
    "catalog_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False, default=0),
)

#: Content replaced at the same path (a file edited in place): the old media's history, so that it shows
#: as ``replaced`` (which path held it, when, by what) instead of a nameless ``missing``.
replaced = Table(
    "replaced",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("media_id", String(64), nullable=False),
    Column("source_id", Integer, ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    Column("path", Text, nullable=False),
    Column("by_media_id", String(64), nullable=False),
    Column("replaced_at", DateTime(timezone=True), nullable=False),
    Column("scan_id", Integer, nullable=True),
    Index(None, "media_id"),
    Index(None, "source_id"),
)

#: What changed, in order (``id``): media added, changed, moved, missing or restored, sources online or
#: offline, scans started and finished, projects created or changed. Appended in the transaction that
#: makes the change, read by the event stream and the webhooks (catalog/events.py); kept for a while.
events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("type", String(40), nullable=False),
    Column("source_id", Integer, nullable=True),  # no foreign key: the event outlives a removed source
    Column("project_id", Integer, nullable=True),
    Column("data", JSON, nullable=False, default=dict),
    Index(None, "at"),
)

#: Registered URLs that get events as signed POSTs; ``cursor`` is the last event handled (delivered, or
#: given up on after the retries), so a restart goes on where it stopped.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("url", Text, nullable=False),
    Column("secret", LargeBinary, nullable=False),  # sealed (crypto.SecretBox): it signs, so it is kept
    Column("events", JSON, nullable=False, default=list),  # types or prefixes ("media.*"); empty: all
    Column("enabled", Boolean, nullable=False, default=True),
    Column("cursor", BigInteger, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: One row per delivery attempt (the last few hundred per webhook are kept).
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("webhook_id", Integer, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", BigInteger, nullable=True),
    Column("event_type", String(40), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("outcome", String(16), nullable=False),  # delivered | retrying | failed
    Column("http_status", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Float, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Index(None, "webhook_id", "id"),
)
