"""Cases and members (sealed attributes), their blind indexes, duplicate alerts.

Revision ID: 0007_cases
Revises: 0005_case_keys
Create Date: 2026-12-08

Branches from the case keys (committed) rather than from later work in
progress; ``casework db upgrade`` goes to every head.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_cases"
down_revision = "0005_case_keys"
branch_labels = None
depends_on = None

_MEMBER_BLOCKS = {
    "sex": 16,
    "birth_year": 8,
    "country_of_origin": 8,
    "full_name": 64,
    "other_names": 64,
    "date_of_birth": 16,
    "place_of_birth": 64,
    "documents": 64,
    "phone": 48,
    "address": 128,
    "narrative": 256,
    "birth_registration": 32,
    "nationality_status": 32,
    "mother": 48,
    "registration_risk": 256,
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
        "cases",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reference", sa.String(length=11), nullable=False,
                  comment="Random Crockford base32 reference with check symbol."),
        sa.Column("office_code", sa.String(length=32), nullable=False,
                  comment="Owning office: the scope of access."),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("resettlement_stage", sa.String(length=40), nullable=False),
        _sealed("specific_needs", 128),
        sa.Column("version", sa.Integer(), nullable=False, comment="Bumped by every write."),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True,
                  comment="Set when the case was crypto-shredded; only a tombstone is left."),
        sa.ForeignKeyConstraint(["office_code"], ["offices.code"],
                                name=op.f("fk_cases_office_code_offices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("reference", name=op.f("uq_cases_reference")),
    )
    op.create_index(op.f("ix_cases_office_code_created_at"), "cases",
                    ["office_code", "created_at"])
    op.create_table(
        "case_members",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False, comment="Order within the household."),
        sa.Column("relationship", sa.String(length=32), nullable=False,
                  comment="Relationship to the principal applicant."),
        *(_sealed(name, block) for name, block in _MEMBER_BLOCKS.items()),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"],
                                name=op.f("fk_case_members_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_members")),
    )
    op.create_index(op.f("ix_case_members_case_id"), "case_members", ["case_id"])
    op.create_table(
        "case_blind_indexes",
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False, comment="Index name."),
        sa.Column("root_version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.BigInteger(), autoincrement=False, nullable=False,
                  comment="Truncated HMAC."),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"],
                                name=op.f("fk_case_blind_indexes_case_id_cases")),
        sa.ForeignKeyConstraint(["member_id"], ["case_members.id"],
                                name=op.f("fk_case_blind_indexes_member_id_case_members")),
        sa.PrimaryKeyConstraint("member_id", "name", "root_version", "value",
                                name=op.f("pk_case_blind_indexes")),
    )
    op.create_index(op.f("ix_case_blind_indexes_case_id"), "case_blind_indexes", ["case_id"])
    op.create_index(op.f("ix_case_blind_indexes_name_value"), "case_blind_indexes",
                    ["name", "value"])
    op.create_table(
        "duplicate_alerts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("other_case_id", sa.Uuid(), nullable=False),
        sa.Column("matched_on", sa.String(length=32), nullable=False,
                  comment="Name of the blind index that matched (never a value)."),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"],
                                name=op.f("fk_duplicate_alerts_case_id_cases")),
        sa.ForeignKeyConstraint(["other_case_id"], ["cases.id"],
                                name=op.f("fk_duplicate_alerts_other_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duplicate_alerts")),
        sa.UniqueConstraint("case_id", "other_case_id", "matched_on",
                            name=op.f("uq_duplicate_alerts_case_id_other_case_id_matched_on")),
    )
    op.create_index(op.f("ix_duplicate_alerts_other_case_id"), "duplicate_alerts",
                    ["other_case_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_duplicate_alerts_other_case_id"), table_name="duplicate_alerts")
    op.drop_table("duplicate_alerts")
    op.drop_index(op.f("ix_case_blind_indexes_name_value"), table_name="case_blind_indexes")
    op.drop_index(op.f("ix_case_blind_indexes_case_id"), table_name="case_blind_indexes")
    op.drop_table("case_blind_indexes")
    op.drop_index(op.f("ix_case_members_case_id"), table_name="case_members")
    op.drop_table("case_members")
    op.drop_index(op.f("ix_cases_office_code_created_at"), table_name="cases")
    op.drop_table("cases")
