"""Per-case data keys, wrapped under a key-encryption key.

Revision ID: 0005_case_keys
Revises: 0003_offices
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_case_keys"
down_revision = "0003_offices"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_keys",
        sa.Column("case_id", sa.Uuid(), nullable=False,
                  comment="the case whose fields this data key encrypts"),
        sa.Column("kek_id", sa.String(length=8), nullable=False,
                  comment="KEK that wraps the data key; rows not under the active KEK await "
                  "re-wrapping"),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False,
                  comment="AES-256-GCM sealed data key, format in docs/encryption.md"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True,
                  comment="last re-wrap under a new KEK"),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_case_keys")),
    )
    op.create_index(op.f("ix_case_keys_kek_id"), "case_keys", ["kek_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_case_keys_kek_id"), table_name="case_keys")
    op.drop_table("case_keys")
