"""Signed checkpoints of the access log; append-only triggers on SQLite too.

Revision ID: 0006_audit_checkpoints
Revises: 0005_case_keys
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_audit_checkpoints"
down_revision = "0005_case_keys"
branch_labels = None
depends_on = None

_REFUSE_FUNCTION = """
CREATE FUNCTION audit_checkpoints_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_checkpoints is append-only';
END;
$$ LANGUAGE plpgsql
"""

# SQLite has no statement triggers and no TRUNCATE; row triggers refuse the rest.
# Whoever holds the file can drop them: they stop mistakes, the signed
# checkpoints stop the rest.
_SQLITE_TRIGGERS = {
    f"{table}_no_{verb.lower()}": (
        f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
    )
    for table in ("audit_log", "audit_checkpoints")
    for verb in ("UPDATE", "DELETE")
}


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column(
            "size",
            sa.BigInteger(),
            autoincrement=False,
            nullable=False,
            comment="Entries covered: seq 1..size.",
        ),
        sa.Column(
            "root",
            sa.LargeBinary(length=32),
            nullable=False,
            comment="RFC 6962 Merkle root over the entry hashes.",
        ),
        sa.Column(
            "frontier",
            sa.LargeBinary(),
            nullable=False,
            comment="Merkle peaks at this size, concatenated, largest first.",
        ),
        sa.Column("note", sa.Text(), nullable=False, comment="The signed checkpoint note (C2SP)."),
        sa.Column(
            "signed_at_us",
            sa.BigInteger(),
            nullable=False,
            comment="UTC signing time in microseconds since the Unix epoch.",
        ),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_audit_checkpoints")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_REFUSE_FUNCTION)
        op.execute(
            "CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
            "ON audit_checkpoints FOR EACH STATEMENT "
            "EXECUTE FUNCTION audit_checkpoints_refuse_change()"
        )
    elif op.get_bind().dialect.name == "sqlite":
        for statement in _SQLITE_TRIGGERS.values():
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_checkpoints_append_only ON audit_checkpoints")
        op.execute("DROP FUNCTION IF EXISTS audit_checkpoints_refuse_change()")
    elif op.get_bind().dialect.name == "sqlite":
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("audit_checkpoints")
