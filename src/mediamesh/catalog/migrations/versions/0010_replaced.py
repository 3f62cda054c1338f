"""replaced: content replaced at the same path, kept as the media's history

A file edited in place gets a new content id; the old media item then has no location left. It is not
lost (nobody deleted anything): this table says which path held it and when it was replaced, so the old
media shows as ``replaced`` with its history instead of a nameless ``missing``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "replaced",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("media_id", sa.String(64), nullable=False),
        sa.Column(
            "source_id",
            sa.Integer(),
            sa.ForeignKey("sources.id", ondelete="CASCADE", name="fk_replaced_source_id_sources"),
            nullable=False,
        ),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("by_media_id", sa.String(64), nullable=False),
        sa.Column("replaced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_replaced"),
    )
    op.create_index("ix_replaced_media_id", "replaced", ["media_id"])
    op.create_index("ix_replaced_source_id", "replaced", ["source_id"])


def downgrade() -> None:
    op.drop_index("ix_replaced_source_id", table_name="replaced")
    op.drop_index("ix_replaced_media_id", table_name="replaced")
    op.drop_table("replaced")
