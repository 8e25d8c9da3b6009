"""Access log: hash tiles, tree size, key chain, witnesses, cosignatures, verifications.

Revision ID: 0018_audit_tiles
Revises: 0017_sync
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_audit_tiles"
down_revision = "0017_sync"
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
    op.create_table(
        "audit_keys",
        sa.Column("from_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("vkey", sa.String(length=256), nullable=False, comment="C2SP verifier key."),
        sa.Column("statement", sa.Text(), nullable=True),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("from_size", name=op.f("pk_audit_keys")),
        sa.UniqueConstraint("vkey", name=op.f("uq_audit_keys_vkey")),
    )
    op.create_table(
        "audit_witnesses",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("vkey", sa.String(length=256), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_audit_witnesses")),
        sa.UniqueConstraint("vkey", name=op.f("uq_audit_witnesses_vkey")),
    )
    op.create_table(
        "audit_cosignatures",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("witness", sa.String(length=128), nullable=False),
        sa.Column(
            "timestamp",
            sa.BigInteger(),
            nullable=False,
            comment="Seconds since the Unix epoch.",
        ),
        sa.Column("line", sa.Text(), nullable=False, comment="The signature line, verbatim."),
        sa.PrimaryKeyConstraint("size", "witness", name=op.f("pk_audit_cosignatures")),
    )
    op.create_table(
        "audit_verifications",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=16), nullable=False, comment="full or incremental"),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("from_size", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("checkpoints", sa.BigInteger(), nullable=False),
        sa.Column("first_bad_seq", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("last_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_verifications")),
    )


def downgrade() -> None:
    op.drop_table("audit_verifications")
    op.drop_table("audit_cosignatures")
    op.drop_table("audit_witnesses")
    op.drop_table("audit_keys")
    op.drop_table("audit_tree")
    op.drop_table("audit_tiles")
