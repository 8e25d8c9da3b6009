"""Duplicate detection that survives romanisation: alert scores and the cross-office queue.

Revision ID: 0016_duplicate_variants
Revises: 0015_partner_and_alert_versions
Create Date: 2026-12-07

``duplicate_alerts.score`` keeps the 0-1 score an alert was raised with.
``duplicate_checks`` queues cases to compare with other offices outside the
registering office's request. The name blind indexes changed their input
(spelling-tolerant skeletons) and width (24 bits), and a ``name_variant``
index was added: the old ``name_birth_year`` entries are deleted here, and
``casework keys reindex`` must run after the upgrade to rebuild every entry
(until then, names match nothing; documents still do).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_duplicate_variants"
down_revision = "0015_partner_and_alert_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("duplicate_alerts") as batch:
        batch.add_column(
            sa.Column(
                "score",
                sa.Float(),
                nullable=True,
                comment="Match score 0-1 when raised (casework.cases.duplicates.THRESHOLD).",
            )
        )
        batch.alter_column(
            "matched_on",
            existing_type=sa.String(length=32),
            existing_nullable=False,
            comment="What matched: document_number, name_birth_year or name_variant "
            "(never a value).",
            existing_comment="Name of the blind index that matched (never a value).",
        )
    op.create_table(
        "duplicate_checks",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_duplicate_checks_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_duplicate_checks")),
    )
    op.create_index(op.f("ix_duplicate_checks_queued_at"), "duplicate_checks", ["queued_at"])
    op.execute("DELETE FROM case_blind_indexes WHERE name = 'name_birth_year'")


def downgrade() -> None:
    op.drop_index(op.f("ix_duplicate_checks_queued_at"), table_name="duplicate_checks")
    op.drop_table("duplicate_checks")
    with op.batch_alter_table("duplicate_alerts") as batch:
        batch.alter_column(
            "matched_on",
            existing_type=sa.String(length=32),
            existing_nullable=False,
            comment="Name of the blind index that matched (never a value).",
        )
        batch.drop_column("score")
    op.execute("DELETE FROM case_blind_indexes WHERE name IN ('name_birth_year', 'name_variant')")
