"""Cases: index (office_code, created_at, id), so a list page is read off the index in order.

Revision ID: 0022_case_page_index
Revises: 0021_audit_hash_unique_dropped
Create Date: 2026-12-07

A list page is an office's live cases, newest first, ties broken by id
(``ORDER BY created_at DESC, id DESC``). With (office_code, created_at) the
database walks the index but sorts each run of equal times by id in a
temporary B-tree, and cases registered in one import share their time: the
first page sorted every case of the newest batch. With the id in the index the
first ``limit`` entries are the page. The new index serves every query the old
one did (its prefix), so the old one goes: a case write updates as many
B-trees as before.
"""

from __future__ import annotations

from alembic import op

revision = "0022_case_page_index"
down_revision = "0021_audit_hash_unique_dropped"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_cases_office_code_created_at_id"), "cases", ["office_code", "created_at", "id"]
    )
    op.drop_index(op.f("ix_cases_office_code_created_at"), table_name="cases")


def downgrade() -> None:
    op.create_index(op.f("ix_cases_office_code_created_at"), "cases", ["office_code", "created_at"])
    op.drop_index(op.f("ix_cases_office_code_created_at_id"), table_name="cases")
