"""Reports and retention: counted steps (sealed), the retention policy, legal holds,
retention tombstones.

Revision ID: 0013_reports
Revises: 0012_row_seals
Create Date: 2026-12-07

A counted step keeps only its case and time in plaintext; which step and its
outcome are sealed under the case's data key. A legal hold's reason is sealed
too. The policy holds states, periods and administrators' user ids.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_reports"
down_revision = "0012_row_seals"
branch_labels = None
depends_on = None


def _sealed(name: str, block: int) -> sa.Column:
    return sa.Column(
        name,
        sa.LargeBinary(),
        nullable=True,
        comment=f"encrypted json padded to {block} bytes (AES-256-GCM, see docs/encryption.md)",
    )


def _row_seal() -> sa.Column:
    return sa.Column(
        "row_seal",
        sa.LargeBinary(),
        nullable=True,
        comment="counter and HMAC over the row's sealed columns (docs/encryption.md)",
    )


def upgrade() -> None:
    op.create_table(
        "report_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="When the step was taken; reports count by its month.",
        ),
        _sealed("details", 256),
        _row_seal(),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_report_events_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_events")),
    )
    op.create_index(op.f("ix_report_events_case_id"), "report_events", ["case_id"])
    op.create_index(op.f("ix_report_events_occurred_at"), "report_events", ["occurred_at"])
    op.create_table(
        "retention_policies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column(
            "rules",
            sa.JSON(),
            nullable=False,
            comment="Retention state -> days after the case's last change.",
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "proposed_by",
            sa.String(length=64),
            nullable=True,
            comment="User id of the proposer; null for configuration's.",
        ),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_policies")),
    )
    op.create_table(
        "legal_holds",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("is_held", sa.Boolean(), nullable=False),
        _sealed("reason", 256),
        _row_seal(),
        sa.Column("changed_by", sa.String(length=64), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_legal_holds_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_legal_holds")),
    )
    op.create_table(
        "retention_tombstones",
        sa.Column("reference", sa.String(length=11), nullable=False),
        sa.Column("office_code", sa.String(length=32), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "policy_id",
            sa.Integer(),
            nullable=False,
            comment="The approved policy whose proposer and approver were the two people.",
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["retention_policies.id"],
            name=op.f("fk_retention_tombstones_policy_id_retention_policies"),
        ),
        sa.PrimaryKeyConstraint("reference", name=op.f("pk_retention_tombstones")),
    )


def downgrade() -> None:
    op.drop_table("retention_tombstones")
    op.drop_table("legal_holds")
    op.drop_table("retention_policies")
    op.drop_index(op.f("ix_report_events_occurred_at"), table_name="report_events")
    op.drop_index(op.f("ix_report_events_case_id"), table_name="report_events")
    op.drop_table("report_events")
