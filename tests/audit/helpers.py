"""Shared by the access-log tests that use the database: filling the log, tampering with it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from casework import audit
from casework.audit import Actor, AuditAction, Outcome
from casework.audit.encoding import AuditRecord, ChainedRecord

ACTIONS = (AuditAction.CASE_READ, AuditAction.CASE_UPDATE, AuditAction.CASE_SEARCH)
OUTCOMES = (Outcome.SUCCESS, Outcome.SUCCESS, Outcome.DENIED)


def actor_for(n: int) -> Actor:
    return Actor(user_id=f"u-{n % 7}", role="caseworker", office=f"o{n % 3}")


def fill(session: Session, count: int, offset: int = 0) -> list[ChainedRecord]:
    """Append ``count`` varied entries through ``audit.record`` (an app context is needed)."""
    return [
        audit.record(
            ACTIONS[n % 3],
            target=f"REF{n % 11:08d}",
            fields=["family_name", "given_name"][: n % 3],
            outcome=OUTCOMES[n % 3],
            actor=actor_for(n),
            session=session,
        )
        for n in range(offset, offset + count)
    ]


@contextmanager
def audit_settings(app: Flask, **values: Any) -> Iterator[None]:
    """Change audit configuration keys for the block (the app is shared by the session)."""
    settings = app.config["CASEWORK"]
    saved = {name: settings[name] for name in values}
    settings.update(values)
    try:
        yield
    finally:
        settings.update(saved)


def allow_tampering(connection: Connection) -> None:
    """Lift the append-only triggers inside the test's transaction (rolled back after).

    For tests that play the attacker with database access.
    """
    if connection.dialect.name == "postgresql":
        for table in ("audit_log", "audit_checkpoints"):
            connection.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
    else:
        for table in ("audit_log", "audit_checkpoints"):
            for verb in ("update", "delete"):
                connection.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{verb}"))


def system_read() -> AuditRecord:
    """A draft entry with no actor and no target: the system reading the log, now."""
    return AuditRecord(
        1, datetime.now(UTC), None, "system", None, None, "audit.read", None, (), "success", None
    )
