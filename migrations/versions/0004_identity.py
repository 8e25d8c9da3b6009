"""Identity and access: users, bearer tokens, login throttle; office versions.

Revision ID: 0004_identity
Revises: 0003_offices
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_identity"
down_revision = "0003_offices"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("offices") as batch:
        batch.add_column(
            sa.Column(
                "version",
                sa.Integer(),
                server_default="1",
                nullable=False,
                comment="Bumped by every change (the ETag).",
            )
        )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "username", sa.String(length=64), nullable=False, comment="Lower case; the login name."
        ),
        sa.Column(
            "role", sa.String(length=32), nullable=False, comment="A key of ROLE_PERMISSIONS."
        ),
        sa.Column(
            "office_code", sa.String(length=32), nullable=True, comment="Null for officeless roles."
        ),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column(
            "password_hash", sa.String(length=255), nullable=False, comment="argon2id PHC string."
        ),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "mfa_secret",
            sa.LargeBinary(),
            nullable=True,
            comment="TOTP seed sealed with AES-256-GCM under the KEK mfa_kek_id.",
        ),
        sa.Column("mfa_kek_id", sa.String(length=8), nullable=True),
        sa.Column(
            "mfa_enabled_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Set when enrolment was confirmed; null while pending or off.",
        ),
        sa.Column(
            "mfa_last_step",
            sa.BigInteger(),
            nullable=True,
            comment="Last TOTP time step accepted; that step and earlier are refused.",
        ),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "version",
            sa.Integer(),
            nullable=False,
            comment="Bumped by administrative changes (the ETag), not by logins.",
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["office_code"], ["offices.code"], name=op.f("fk_users_office_code_offices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_index(op.f("ix_users_office_code"), "users", ["office_code"])
    op.create_index(op.f("ix_users_mfa_kek_id"), "users", ["mfa_kek_id"])
    op.create_table(
        "auth_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column(
            "mfa_pending",
            sa.Boolean(),
            nullable=False,
            comment="Good only for MFA enrolment until confirmed.",
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "last_used_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="Refreshed at most once a minute (idle expiry).",
        ),
        sa.Column(
            "expires_at", sa.DateTime(timezone=True), nullable=False, comment="Absolute expiry."
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], ondelete="CASCADE", name=op.f("fk_auth_tokens_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_auth_tokens_token_hash")),
    )
    op.create_index(op.f("ix_auth_tokens_user_id"), "auth_tokens", ["user_id"])
    op.create_index(op.f("ix_auth_tokens_expires_at"), "auth_tokens", ["expires_at"])
    op.create_table(
        "auth_throttle",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "expires_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="The row may be purged after this time.",
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_auth_throttle")),
    )
    op.create_index(op.f("ix_auth_throttle_expires_at"), "auth_throttle", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_auth_throttle_expires_at"), table_name="auth_throttle")
    op.drop_table("auth_throttle")
    op.drop_index(op.f("ix_auth_tokens_expires_at"), table_name="auth_tokens")
    op.drop_index(op.f("ix_auth_tokens_user_id"), table_name="auth_tokens")
    op.drop_table("auth_tokens")
    op.drop_index(op.f("ix_users_mfa_kek_id"), table_name="users")
    op.drop_index(op.f("ix_users_office_code"), table_name="users")
    op.drop_table("users")
    with op.batch_alter_table("offices") as batch:
        batch.drop_column("version")
