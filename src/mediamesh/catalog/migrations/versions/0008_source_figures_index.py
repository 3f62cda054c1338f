"""files(source_id, state, media_id): a source's file and media counts from the index alone

The dashboard shows, per source, its present and missing files and its media. Counted from the table,
that read every location's row (240 ms and 400 ms on 133k locations); from this covering index, a few ms.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_files_source_id_state_media_id"), "files", ["source_id", "state", "media_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_files_source_id_state_media_id"), table_name="files")
