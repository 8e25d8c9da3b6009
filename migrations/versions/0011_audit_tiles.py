"""Access log: hash tiles and the integrated tree size (group commit, tiles).

Revision ID: 0011_audit_tiles
Revises: 0010_handoff
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_audit_tiles"
down_revision = "0010_handoff"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_tiles",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column(
            "hashes", sa.LargeBinary(), nullable=False, comment="Concatenated 32-byte hashes."
        ),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_audit_tiles")),
    )
    op.create_table(
        "audit_tree",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.Column("last_hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_tree")),
    )


def downgrade() -> None:
    op.drop_table("audit_tree")
    op.drop_table("audit_tiles")
