"""Access log: no unique index on the entry hash.

Revision ID: 0021_audit_hash_unique_dropped
Revises: 0020_case_key_index
Create Date: 2026-12-07

Nothing looks an entry up by its hash: the auditor's filters (actor, target,
action, outcome, time) and every read of the chain (by seq) have their own
indexes, which stay. A hash is over the entry's seq, so the primary key on
seq already keeps two entries from one position, and the chain, not the
index, is what a verifier checks. Yet every append paid for the index: a
random key, one more B-tree page dirtied (and written to the WAL, fsynced)
per entry of a group-commit batch, the dearest of audit_log's indexes.

SQLite cannot drop a table constraint: the table is rebuilt (its indexes
with it) and the append-only row triggers of 0006, dropped with the old
table, are created again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021_audit_hash_unique_dropped"
down_revision = "0020_case_key_index"
branch_labels = None
depends_on = None

_CONSTRAINT = "uq_audit_log_hash"

# As migration 0006 created them.
_SQLITE_TRIGGERS = {
    f"audit_log_no_{verb.lower()}": (
        f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
    )
    for verb in ("UPDATE", "DELETE")
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(_CONSTRAINT, "audit_log", type_="unique")
        return
    with op.batch_alter_table("audit_log", recreate="always") as batch:
        batch.drop_constraint(_CONSTRAINT, type_="unique")
    _restore_sqlite_triggers()


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.create_unique_constraint(_CONSTRAINT, "audit_log", ["hash"])
        return
    with op.batch_alter_table("audit_log", recreate="always") as batch:
        batch.create_unique_constraint(_CONSTRAINT, ["hash"])
    _restore_sqlite_triggers()


def _restore_sqlite_triggers() -> None:
    existing = {
        row[0]
        for row in op.get_bind().execute(
            sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        )
    }
    for name, statement in _SQLITE_TRIGGERS.items():
        if name not in existing:
            op.execute(statement)
