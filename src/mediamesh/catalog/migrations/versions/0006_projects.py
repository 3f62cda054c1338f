"""projects: rules, templates, memberships (with their reasons), manual exclusions; files.changed_scan_id

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("files", sa.Column("changed_scan_id", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_files_changed_scan_id"), "files", ["changed_scan_id"])
    op.create_table(
        "project_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_templates")),
        sa.UniqueConstraint("path", name=op.f("uq_project_templates_path")),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["project_templates.id"],
            name=op.f("fk_projects_template_id_project_templates"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
    )
    op.create_table(
        "project_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_rules_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_rules")),
    )
    op.create_index(op.f("ix_project_rules_project_id"), "project_rules", ["project_id"])
    op.create_table(
        "project_members",
        sa.Column("id", BigId, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("media_id", sa.String(length=64), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("template_id", sa.Integer(), nullable=True),
        sa.Column("file_id", BigId, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_members_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["media_id"], ["media.id"], name=op.f("fk_project_members_media_id_media")),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["project_rules.id"],
            name=op.f("fk_project_members_rule_id_project_rules"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["project_templates.id"],
            name=op.f("fk_project_members_template_id_project_templates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_project_members_file_id_files"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_members")),
    )
    for columns in (["project_id", "media_id"], ["media_id"], ["file_id"], ["rule_id"], ["template_id"]):
        op.create_index(op.f("ix_project_members_" + "_".join(columns)), "project_members", columns)
    op.create_table(
        "project_exclusions",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("media_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_exclusions_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["media_id"], ["media.id"], name=op.f("fk_project_exclusions_media_id_media")
        ),
        sa.PrimaryKeyConstraint("project_id", "media_id", name=op.f("pk_project_exclusions")),
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_files_changed_scan_id"), "files")
    with op.batch_alter_table("files") as batch:
        batch.drop_column("changed_scan_id")
    for table in ("project_exclusions", "project_members", "project_rules", "projects", "project_templates"):
        op.drop_table(table)
