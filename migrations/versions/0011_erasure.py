"""Erasure with two people, and erasures waiting for the shred step.

Revision ID: 0011_erasure
Revises: 0010_handoff, 0004_identity, 0006_audit_checkpoints
Create Date: 2026-12-07

``erasure_requests`` holds requests to erase a case (the reason sealed under
the case's data key); ``key_shred_marks`` says that an erasure's wrapped key
may still sit in a copy of the database until ``casework keys shred``
destroys the KEK it was wrapped under (no case id is kept).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_erasure"
down_revision = ("0010_handoff", "0004_identity", "0006_audit_checkpoints")  # one line from here on
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erasure_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("office_code", sa.String(length=32), nullable=False,
                  comment="The case's office at request."),
        sa.Column("status", sa.String(length=16), nullable=False,
                  comment="pending, approved, rejected, cancelled."),
        sa.Column("reason", sa.LargeBinary(), nullable=True,
                  comment="encrypted json padded to 512 bytes (AES-256-GCM, see docs/encryption.md)"),
        sa.Column("requested_by", sa.String(length=64), nullable=False,
                  comment="User id of the requester."),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True,
                  comment="User id of the decider."),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False, comment="Bumped by every write."),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"],
                                name=op.f("fk_erasure_requests_case_id_cases")),
        sa.ForeignKeyConstraint(["office_code"], ["offices.code"],
                                name=op.f("fk_erasure_requests_office_code_offices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_requests")),
    )
    op.create_index(op.f("ix_erasure_requests_case_id"), "erasure_requests", ["case_id"])
    op.create_index(op.f("ix_erasure_requests_office_code"), "erasure_requests", ["office_code"])
    op.create_table(
        "key_shred_marks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kek_id", sa.String(length=8), nullable=False,
                  comment="KEK active when the case was erased: it and every older KEK must "
                  "be destroyed"),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False,
                  comment="when the erasure was committed"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_shred_marks")),
    )
    op.create_index(op.f("ix_key_shred_marks_kek_id"), "key_shred_marks", ["kek_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_key_shred_marks_kek_id"), table_name="key_shred_marks")
    op.drop_table("key_shred_marks")
    op.drop_index(op.f("ix_erasure_requests_office_code"), table_name="erasure_requests")
    op.drop_index(op.f("ix_erasure_requests_case_id"), table_name="erasure_requests")
    op.drop_table("erasure_requests")
