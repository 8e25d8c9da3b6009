"""A per-row authenticator over each row's sealed columns.

Revision ID: 0012_row_seals
Revises: 0011_erasure
Create Date: 2026-12-07

Every table with sealed columns gets ``row_seal``: a counter and an HMAC under
a key derived from the case's data key, over the row's ciphertexts (see
docs/encryption.md). A migration has no keyring, so rows written before this
revision have none: run ``casework keys seal-rows`` once after upgrading,
before serving (a row with sealed values and no seal refuses to open).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_row_seals"
down_revision = "0011_erasure"
branch_labels = None
depends_on = None

TABLES = (
    "cases",
    "case_members",
    "case_workflows",
    "erasure_requests",
    "handoff_consents",
    "handoffs",
    "vetting_checks",
    "vetting_interviews",
    "duplicate_alert_reviews",
)
COMMENT = "counter and HMAC over the row's sealed columns (docs/encryption.md)"


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("row_seal", sa.LargeBinary(), nullable=True, comment=COMMENT))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("row_seal")
