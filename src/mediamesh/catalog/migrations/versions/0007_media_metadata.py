"""media metadata: MIME type and technical metadata read from the content, once per media id

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS: list[sa.Column[Any]] = [
    sa.Column("mime", sa.String(length=100), nullable=True),
    sa.Column("width", sa.Integer(), nullable=True),
    sa.Column("height", sa.Integer(), nullable=True),
    sa.Column("duration", sa.Float(), nullable=True),
    sa.Column("codec", sa.String(length=32), nullable=True),
    sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("camera", sa.String(length=200), nullable=True),
    sa.Column("info", sa.JSON(), nullable=True),
    sa.Column("metadata_error", sa.Text(), nullable=True),
    sa.Column("metadata_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("metadata_bytes", sa.BigInteger(), nullable=True),
]


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("media", column)
    op.create_index(op.f("ix_media_metadata_at"), "media", ["metadata_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_media_metadata_at"), "media")
    with op.batch_alter_table("media") as batch:
        for column in COLUMNS:
            batch.drop_column(column.name)
