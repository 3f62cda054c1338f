"""Durable jobs, the runners that hold them, a shared write generation, and features per source

Jobs replace the server's in-memory scan queue: they survive a restart and can be shared by processes.
``catalog_state.generation`` lets caches in one process see writes by another. ``sources.features``
records what a source's kind decided at registration (case sensitivity, mtime precision).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# What each kind decided before features were stored (the same as its registration says today).
KIND_FEATURES = {
    "smb": '{"file_ids": true, "case_insensitive": true, "mtime_precision_ns": 1000}',
    "local": '{"file_ids": true, "case_insensitive": false, "mtime_precision_ns": 1}',
}


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("features", sa.JSON(), nullable=False, server_default="{}"))
    value = ":f" if op.get_bind().dialect.name == "sqlite" else "CAST(:f AS JSON)"
    for kind, features in KIND_FEATURES.items():
        op.execute(
            sa.text(f"UPDATE sources SET features = {value} WHERE kind = :k").bindparams(f=features, k=kind)
        )
    op.create_table(
        "jobs",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("key", sa.String(200), nullable=True),
        sa.Column(
            "source_id",
            sa.Integer(),
            sa.ForeignKey("sources.id", ondelete="CASCADE", name="fk_jobs_source_id_sources"),
            nullable=True,
        ),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_state_run_after", "jobs", ["state", "run_after"])
    op.create_index("ix_jobs_key_state", "jobs", ["key", "state"])
    op.create_index("ix_jobs_source_id", "jobs", ["source_id"])
    op.create_index(
        "uq_jobs_key_queued",
        "jobs",
        ["key"],
        unique=True,
        sqlite_where=sa.text("state = 'queued'"),
        postgresql_where=sa.text("state = 'queued'"),
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workers"),
    )
    op.create_table(
        "catalog_state",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_catalog_state"),
    )
    op.execute("INSERT INTO catalog_state (key, value) VALUES ('generation', 0)")


def downgrade() -> None:
    op.drop_table("catalog_state")
    op.drop_table("workers")
    op.drop_index("uq_jobs_key_queued", table_name="jobs")
    op.drop_index("ix_jobs_source_id", table_name="jobs")
    op.drop_index("ix_jobs_key_state", table_name="jobs")
    op.drop_index("ix_jobs_state_run_after", table_name="jobs")
    op.drop_table("jobs")
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("features")
