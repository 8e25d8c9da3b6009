"""Access log on SQLite: ``seq INTEGER PRIMARY KEY``, the table's own rowid.

Revision ID: 0023_audit_log_rowid
Revises: 0022_case_page_index
Create Date: 2026-12-07

On SQLite a ``BIGINT PRIMARY KEY`` is not an alias of the rowid: the table
is a B-tree keyed by a hidden rowid, and the primary key a second B-tree
beside it, which every append updated (one more page dirtied, written to the
WAL and fsynced per batch) and every read by seq went through before reaching
the row. Declared ``INTEGER`` the column is the rowid: one B-tree keyed by
seq. Values, range (64-bit signed) and every other column, index and trigger
stay as they were; PostgreSQL is left alone (BIGINT).

SQLite cannot change a column's type in place: the table is rebuilt, its rows
copied unchanged, its indexes created again, and the append-only row triggers
of 0006, dropped with the old table, are created again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023_audit_log_rowid"
down_revision = "0022_case_page_index"
branch_labels = None
depends_on = None

# As migration 0006 created them.
_SQLITE_TRIGGERS = {
    f"audit_log_no_{verb.lower()}": (
        f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
    )
    for verb in ("UPDATE", "DELETE")
}


def upgrade() -> None:
    _retype_seq(sa.BigInteger(), sa.Integer())


def downgrade() -> None:
    _retype_seq(sa.Integer(), sa.BigInteger())


def _retype_seq(old: sa.types.TypeEngine[int], new: sa.types.TypeEngine[int]) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("audit_log", recreate="always") as batch:
        batch.alter_column(
            "seq",
            existing_type=old,
            type_=new,
            existing_nullable=False,
            autoincrement=False,
            existing_comment="Gapless, from 1.",
        )
    existing = {
        row[0]
        for row in op.get_bind().execute(
            sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        )
    }
    for name, statement in _SQLITE_TRIGGERS.items():
        if name not in existing:
            op.execute(statement)
