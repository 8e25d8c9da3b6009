"""Consent records (sealed), partner organisations and their keys, hand-offs of cases.

Revision ID: 0010_handoff
Revises: 0009_vetting
Create Date: 2026-12-10

Consent records keep only their ids in plaintext; everything else is sealed
under the case's data key. Partners and hand-offs hold codes, keys, offices,
user ids, statuses and times; a partner package (ciphertext sealed to the
partner) is kept until its one download, and the names of the fields it
carries are sealed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_handoff"
down_revision = "0009_vetting"
branch_labels = None
depends_on = None


def _sealed(name: str, block: int) -> sa.Column:
    return sa.Column(
        name,
        sa.LargeBinary(),
        nullable=True,
        comment=f"encrypted json padded to {block} bytes (AES-256-GCM, see docs/encryption.md)",
    )


def upgrade() -> None:
    op.create_table(
        "handoff_consents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        _sealed("consent", 512),
        _sealed("withdrawal", 128),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"],
                                name=op.f("fk_handoff_consents_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoff_consents")),
    )
    op.create_index(op.f("ix_handoff_consents_case_id"), "handoff_consents", ["case_id"])
    op.create_table(
        "handoff_partners",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False, comment="Stable partner code."),
        sa.Column("name", sa.String(length=200), nullable=False,
                  comment="The organisation's name."),
        sa.Column("public_key", sa.LargeBinary(), nullable=False,
                  comment="X25519 public key (32 raw bytes) packages are sealed to."),
        sa.Column("verify_key", sa.LargeBinary(), nullable=True,
                  comment="Ed25519 key (32 raw bytes) that signs packages from the partner."),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True, comment="User id."),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoff_partners")),
        sa.UniqueConstraint("code", name=op.f("uq_handoff_partners_code")),
    )
    op.create_table(
        "handoffs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False, comment="office or partner."),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("from_office", sa.String(length=32), nullable=False,
                  comment="Owning office when requested."),
        sa.Column("to_office", sa.String(length=32), nullable=True,
                  comment="Receiving office (kind office)."),
        sa.Column("partner_id", sa.Uuid(), nullable=True,
                  comment="Receiving partner (kind partner)."),
        sa.Column("requested_by", sa.String(length=64), nullable=False, comment="User id."),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=True, comment="User id."),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=64), nullable=True,
                  comment="User id of whoever accepted, declined, revoked or sent it."),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("package", sa.LargeBinary(), nullable=True,
                  comment="Partner package (sealed to the partner) until downloaded."),
        _sealed("package_fields", 256),
        sa.Column("package_built_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("package_downloaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("package_downloaded_by", sa.String(length=64), nullable=True,
                  comment="User id."),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_handoffs_case_id_cases")),
        sa.ForeignKeyConstraint(["from_office"], ["offices.code"],
                                name=op.f("fk_handoffs_from_office_offices")),
        sa.ForeignKeyConstraint(["to_office"], ["offices.code"],
                                name=op.f("fk_handoffs_to_office_offices")),
        sa.ForeignKeyConstraint(["partner_id"], ["handoff_partners.id"],
                                name=op.f("fk_handoffs_partner_id_handoff_partners")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoffs")),
    )
    op.create_index(op.f("ix_handoffs_case_id_requested_at"), "handoffs",
                    ["case_id", "requested_at"])
    op.create_index(op.f("ix_handoffs_from_office"), "handoffs", ["from_office"])
    op.create_index(op.f("ix_handoffs_to_office"), "handoffs", ["to_office"])


def downgrade() -> None:
    op.drop_index(op.f("ix_handoffs_to_office"), table_name="handoffs")
    op.drop_index(op.f("ix_handoffs_from_office"), table_name="handoffs")
    op.drop_index(op.f("ix_handoffs_case_id_requested_at"), table_name="handoffs")
    op.drop_table("handoffs")
    op.drop_table("handoff_partners")
    op.drop_index(op.f("ix_handoff_consents_case_id"), table_name="handoff_consents")
    op.drop_table("handoff_consents")
