"""MFA for everyone who reads case data: office exemptions and forced re-enrolment.

Revision ID: 0014_mfa_hardening
Revises: 0013_reports
Create Date: 2026-12-07

``offices.mfa_exempt`` is the only way to spare an office's staff the second
factor (changed by an administrator, audited); ``users.mfa_enrolment_due`` is
set by an administrator's MFA reset so the next sign-in must enrol, whatever
the office.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_mfa_hardening"
down_revision = "0013_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "offices",
        sa.Column(
            "mfa_exempt",
            sa.Boolean(),
            nullable=False,
            server_default=sa.false(),
            comment="Staff of this office may work without MFA (an audited exemption).",
        ),
    )
    op.add_column(
        "users",
        sa.Column(
            "mfa_enrolment_due",
            sa.Boolean(),
            nullable=False,
            server_default=sa.false(),
            comment="Set by an administrator's MFA reset: the next sign-in must enrol.",
        ),
    )


def downgrade() -> None:
    op.drop_column("users", "mfa_enrolment_due")
    op.drop_column("offices", "mfa_exempt")
