"""Access log: a full hash tile keeps its inner nodes of heights 4..7.

Revision ID: 0019_audit_inner_nodes
Revises: 0018_audit_tiles
Create Date: 2026-12-07

An inclusion or consistency proof then reads a node of height 4 to 7 inside a
tile instead of rebuilding it from up to 128 hashes. Tiles written before
this revision have none and are rebuilt as before; the column is derived data
(the verifier trusts only the signed roots).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_audit_inner_nodes"
down_revision = "0018_audit_tiles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "audit_tiles",
        sa.Column(
            "inner_nodes",
            sa.LargeBinary(),
            nullable=True,
            comment="A full tile's inner nodes of heights 4..7 (30 hashes).",
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("audit_tiles") as batch:
        batch.drop_column("inner_nodes")
