"""scan trigger: who asked for a scan (cli, api, schedule)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("scans") as batch:
        batch.add_column(sa.Column("trigger", sa.String(length=16), nullable=False, server_default="cli"))


def downgrade() -> None:
    with op.batch_alter_table("scans") as batch:
        batch.drop_column("trigger")
