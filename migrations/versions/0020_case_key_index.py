"""Case keys: index (kek_id, case_id), so a re-wrap batch is a range scan of one KEK's keys.

Revision ID: 0020_case_key_index
Revises: 0019_audit_inner_nodes
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0020_case_key_index"
down_revision = "0019_audit_inner_nodes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_case_keys_kek_id_case_id"), "case_keys", ["kek_id", "case_id"])
    op.drop_index(op.f("ix_case_keys_kek_id"), table_name="case_keys")


def downgrade() -> None:
    op.create_index(op.f("ix_case_keys_kek_id"), "case_keys", ["kek_id"])
    op.drop_index(op.f("ix_case_keys_kek_id_case_id"), table_name="case_keys")
