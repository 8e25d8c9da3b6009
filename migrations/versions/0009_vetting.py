"""Vetting interviews and checks (sealed), and reviews of duplicate alerts.

Revision ID: 0009_vetting
Revises: 0008_workflow
Create Date: 2026-12-10

Branches from the cases; ``casework db upgrade`` goes to every head.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_vetting"
down_revision = "0008_workflow"
branch_labels = None
depends_on = None


def _sealed(name: str, block: int) -> sa.Column:
    return sa.Column(
        name,
        sa.LargeBinary(),
        nullable=True,
        comment=f"encrypted json padded to {block} bytes (AES-256-GCM, see docs/encryption.md)",
    )


def upgrade() -> None:
    op.create_table(
        "vetting_interviews",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("interviewer_id", sa.String(length=64), nullable=False,
                  comment="User id of the interviewer; plaintext because four-eyes needs it."),
        sa.Column("recorded_by", sa.String(length=64), nullable=True,
                  comment="User id of whoever recorded the interview as conducted; "
                          "null while scheduled."),
        _sealed("members", 256),
        _sealed("scheduled_for", 48),
        _sealed("conducted_on", 16),
        _sealed("interpreter", 64),
        _sealed("notes", 256),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"],
                                name=op.f("fk_vetting_interviews_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vetting_interviews")),
    )
    op.create_index(op.f("ix_vetting_interviews_case_id"), "vetting_interviews", ["case_id"])
    op.create_table(
        "vetting_checks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("check_type", sa.String(length=32), nullable=False,
                  comment="identity_verification, security_screening, ..."),
        _sealed("result", 64),
        _sealed("findings", 256),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"],
                                name=op.f("fk_vetting_checks_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vetting_checks")),
        sa.UniqueConstraint("case_id", "check_type",
                            name=op.f("uq_vetting_checks_case_id_check_type")),
    )
    op.create_table(
        "duplicate_alert_reviews",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False, comment="The reviewing side's case."),
        sa.Column("reviewed_by", sa.String(length=64), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        _sealed("outcome", 32),
        _sealed("notes", 256),
        sa.ForeignKeyConstraint(["alert_id"], ["duplicate_alerts.id"], ondelete="CASCADE",
                                name=op.f("fk_duplicate_alert_reviews_alert_id_duplicate_alerts")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"],
                                name=op.f("fk_duplicate_alert_reviews_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duplicate_alert_reviews")),
        sa.UniqueConstraint("alert_id", "case_id",
                            name=op.f("uq_duplicate_alert_reviews_alert_id_case_id")),
    )
    op.create_index(op.f("ix_duplicate_alert_reviews_case_id"), "duplicate_alert_reviews",
                    ["case_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_duplicate_alert_reviews_case_id"),
                  table_name="duplicate_alert_reviews")
    op.drop_table("duplicate_alert_reviews")
    op.drop_table("vetting_checks")
    op.drop_index(op.f("ix_vetting_interviews_case_id"), table_name="vetting_interviews")
    op.drop_table("vetting_interviews")
