"""Workflow state per case: plaintext process states and four-eyes user ids, sealed fate.

Revision ID: 0008_workflow
Revises: 0007_cases
Create Date: 2026-12-10

One row per case, written by the first workflow step (intake writes none).
Outcomes, decisions, the resettlement submission, the best-interests
assessment and the reasons for closing are sealed under the case's data key.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_workflow"
down_revision = "0007_cases"
branch_labels = None
depends_on = None

_SEALED_BLOCKS = {
    "first_instance_outcome": 32,
    "appeal_outcome": 32,
    "state_decision": 32,
    "submission": 256,
    "best_interests_assessment": 64,
    "best_interests_note": 256,
    "reasons": 256,
}


def _sealed(name: str, block: int) -> sa.Column:
    return sa.Column(
        name,
        sa.LargeBinary(),
        nullable=True,
        comment=f"encrypted json padded to {block} bytes (AES-256-GCM, see docs/encryption.md)",
    )


def upgrade() -> None:
    op.create_table(
        "case_workflows",
        sa.Column("case_id", sa.Uuid(), nullable=False, comment="One row per case."),
        sa.Column("vetting", sa.String(length=32), nullable=False),
        sa.Column("determination", sa.String(length=32), nullable=False),
        sa.Column("handoff_status", sa.String(length=32), nullable=False),
        sa.Column(
            "last_active_stage",
            sa.String(length=32),
            nullable=True,
            comment="The active stage a closed or handed-off case left.",
        ),
        sa.Column(
            "vetting_referred_by",
            sa.String(length=64),
            nullable=True,
            comment="User id of who referred the vetting for review (four-eyes).",
        ),
        sa.Column(
            "assessment_authors",
            sa.JSON(),
            nullable=False,
            comment="User ids of who drafted the RSD assessment (four-eyes).",
        ),
        sa.Column(
            "first_instance_decided_by",
            sa.String(length=64),
            nullable=True,
            comment="User id of who took the first-instance RSD decision (four-eyes).",
        ),
        sa.Column(
            "rrf_preparers",
            sa.JSON(),
            nullable=False,
            comment="User ids of who prepared the resettlement submission.",
        ),
        *(_sealed(name, block) for name, block in _SEALED_BLOCKS.items()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_workflows_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_case_workflows")),
    )


def downgrade() -> None:
    op.drop_table("case_workflows")
