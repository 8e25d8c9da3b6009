"""Partners and duplicate alerts get a version, their ETag: a deactivation and a review
take If-Match like every other write to an existing resource.

Revision ID: 0015_partner_and_alert_versions
Revises: 0014_mfa_hardening
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_partner_and_alert_versions"
down_revision = "0014_mfa_hardening"
branch_labels = None
depends_on = None

TABLES = {
    "handoff_partners": "ETag; bumped by every change.",
    "duplicate_alerts": "ETag; bumped by every review.",
}


def upgrade() -> None:
    for table, comment in TABLES.items():
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column(
                    "version", sa.Integer(), nullable=False, server_default="1", comment=comment
                )
            )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("version")
