"""Field-office sync: devices, enrolment codes, nonces, the change feed, sealed case
versions, pushed mutations, client references, conflicts; tokens bound to a device.

Revision ID: 0017_sync
Revises: 0016_duplicate_variants
Create Date: 2026-12-07

Plaintext holds ids, offices, sequence numbers, versions, statuses and times;
case snapshots, mutation results and both sides of a conflict are sealed under
the case's data key. The feed clock starts with its one row at 0.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0017_sync"
down_revision = "0016_duplicate_variants"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_case_versions",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "snapshot",
            sa.LargeBinary(),
            nullable=True,
            comment="encrypted json padded to 512 bytes (AES-256-GCM, see docs/encryption.md)",
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_case_versions")),
        sa.UniqueConstraint(
            "case_id", "version", name=op.f("uq_sync_case_versions_case_id_version")
        ),
    )
    op.create_table(
        "sync_client_refs",
        sa.Column("client_ref", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("client_ref", name=op.f("pk_sync_client_refs")),
    )
    op.create_index(
        op.f("ix_sync_client_refs_case_id"), "sync_client_refs", ["case_id"], unique=False
    )
    op.create_table(
        "sync_conflicts",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("office_code", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.String(length=11), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("mutation_id", sa.Uuid(), nullable=False),
        sa.Column("base_version", sa.Integer(), nullable=False),
        sa.Column("server_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, comment="The ETag."),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.Uuid(), nullable=True),
        sa.Column(
            "fields",
            sa.LargeBinary(),
            nullable=True,
            comment="encrypted json padded to 512 bytes (AES-256-GCM, see docs/encryption.md)",
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_conflicts")),
    )
    op.create_index(op.f("ix_sync_conflicts_case_id"), "sync_conflicts", ["case_id"], unique=False)
    op.create_index(
        "ix_sync_conflicts_office_code_status",
        "sync_conflicts",
        ["office_code", "status"],
        unique=False,
    )
    op.create_table(
        "sync_feed",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("office_code", sa.String(length=32), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("op", sa.String(length=8), nullable=False, comment="upsert, delete or evict."),
        sa.Column("reference", sa.String(length=11), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_feed")),
        sa.UniqueConstraint(
            "office_code", "case_id", name=op.f("uq_sync_feed_office_code_case_id")
        ),
    )
    op.create_index(op.f("ix_sync_feed_case_id"), "sync_feed", ["case_id"], unique=False)
    op.create_index(
        "ix_sync_feed_office_code_seq", "sync_feed", ["office_code", "seq"], unique=True
    )
    op.create_table(
        "sync_feed_clock",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_feed_clock")),
    )
    op.create_table(
        "sync_mutations",
        sa.Column("mutation_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column(
            "device_seq",
            sa.BigInteger(),
            nullable=True,
            comment="Null when the result did not use up a number (a reused one).",
        ),
        sa.Column("body_mac", sa.LargeBinary(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column(
            "case_version",
            sa.Integer(),
            nullable=True,
            comment="The case version this mutation produced (merges skip own writes).",
        ),
        sa.Column(
            "key_id",
            sa.Uuid(),
            nullable=False,
            comment="The case whose key seals the result (or the results pseudo-case).",
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "result",
            sa.LargeBinary(),
            nullable=True,
            comment="encrypted json padded to 256 bytes (AES-256-GCM, see docs/encryption.md)",
        ),
        sa.PrimaryKeyConstraint("mutation_id", name=op.f("pk_sync_mutations")),
        sa.UniqueConstraint(
            "device_id", "device_seq", name=op.f("uq_sync_mutations_device_id_device_seq")
        ),
    )
    op.create_index(op.f("ix_sync_mutations_case_id"), "sync_mutations", ["case_id"], unique=False)
    op.create_index(
        op.f("ix_sync_mutations_device_id"), "sync_mutations", ["device_id"], unique=False
    )
    op.create_table(
        "sync_nonces",
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "nonce", name=op.f("pk_sync_nonces")),
    )
    op.create_index(op.f("ix_sync_nonces_expires_at"), "sync_nonces", ["expires_at"], unique=False)
    op.create_table(
        "sync_office_feeds",
        sa.Column("office_code", sa.String(length=32), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False, comment="Cases in scope."),
        sa.Column(
            "checksum",
            sa.LargeBinary(length=32),
            nullable=False,
            comment="XOR of SHA-256(reference, version) over the cases in scope.",
        ),
        sa.PrimaryKeyConstraint("office_code", name=op.f("pk_sync_office_feeds")),
    )
    op.create_table(
        "sync_devices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("office_code", sa.String(length=32), nullable=False),
        sa.Column(
            "label", sa.String(length=64), nullable=False, comment="Chosen by the administrator."
        ),
        sa.Column(
            "public_key", sa.LargeBinary(length=32), nullable=False, comment="Raw Ed25519 key."
        ),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "enrolled_by",
            sa.Uuid(),
            nullable=True,
            comment="The administrator who issued the enrolment code.",
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "next_seq",
            sa.BigInteger(),
            nullable=False,
            comment="The device_seq the next new mutation must carry.",
        ),
        sa.ForeignKeyConstraint(
            ["office_code"], ["offices.code"], name=op.f("fk_sync_devices_office_code_offices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_devices")),
    )
    op.create_index(
        op.f("ix_sync_devices_office_code"), "sync_devices", ["office_code"], unique=False
    )
    op.create_table(
        "sync_enrolment_codes",
        sa.Column("code_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("office_code", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["office_code"],
            ["offices.code"],
            name=op.f("fk_sync_enrolment_codes_office_code_offices"),
        ),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_sync_enrolment_codes")),
    )
    op.create_index(
        op.f("ix_sync_enrolment_codes_expires_at"),
        "sync_enrolment_codes",
        ["expires_at"],
        unique=False,
    )
    op.add_column(
        "auth_tokens",
        sa.Column(
            "device_id",
            sa.Uuid(),
            nullable=True,
            comment="A field device the token is bound to: good only on requests it signed.",
        ),
    )
    op.bulk_insert(
        sa.table(
            "sync_feed_clock", sa.column("id", sa.Integer), sa.column("last_seq", sa.BigInteger)
        ),
        [{"id": 1, "last_seq": 0}],
    )
    # Rows of these tables hold sealed columns: each carries its row seal (see 0012_row_seals).
    for table in ("sync_case_versions", "sync_conflicts", "sync_mutations"):
        op.add_column(
            table,
            sa.Column(
                "row_seal",
                sa.LargeBinary(),
                nullable=True,
                comment="counter and HMAC over the row's sealed columns (docs/encryption.md)",
            ),
        )


def downgrade() -> None:
    op.drop_column("auth_tokens", "device_id")
    op.drop_index(op.f("ix_sync_enrolment_codes_expires_at"), table_name="sync_enrolment_codes")
    op.drop_table("sync_enrolment_codes")
    op.drop_index(op.f("ix_sync_devices_office_code"), table_name="sync_devices")
    op.drop_table("sync_devices")
    op.drop_table("sync_office_feeds")
    op.drop_index(op.f("ix_sync_nonces_expires_at"), table_name="sync_nonces")
    op.drop_table("sync_nonces")
    op.drop_index(op.f("ix_sync_mutations_device_id"), table_name="sync_mutations")
    op.drop_index(op.f("ix_sync_mutations_case_id"), table_name="sync_mutations")
    op.drop_table("sync_mutations")
    op.drop_table("sync_feed_clock")
    op.drop_index("ix_sync_feed_office_code_seq", table_name="sync_feed")
    op.drop_index(op.f("ix_sync_feed_case_id"), table_name="sync_feed")
    op.drop_table("sync_feed")
    op.drop_index("ix_sync_conflicts_office_code_status", table_name="sync_conflicts")
    op.drop_index(op.f("ix_sync_conflicts_case_id"), table_name="sync_conflicts")
    op.drop_table("sync_conflicts")
    op.drop_index(op.f("ix_sync_client_refs_case_id"), table_name="sync_client_refs")
    op.drop_table("sync_client_refs")
    op.drop_table("sync_case_versions")
