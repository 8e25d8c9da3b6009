"""Recording accesses: one call, in the same transaction as the change.

``record`` appends an entry to the hash chain. Appends are serialised so the
chain never forks: on PostgreSQL by a transaction-scoped advisory lock, held
until the request commits; on SQLite by the write lock every transaction takes
(``BEGIN IMMEDIATE``). A rolled-back request therefore leaves no entry, and the
next append links to whatever was really committed. An append that makes a
checkpoint due signs it in the same transaction (:mod:`casework.audit.signer`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from flask import Flask, g, has_app_context, has_request_context, request
from sqlalchemy import Row, event, insert, select, text
from sqlalchemy.orm import Mapper, Session

from casework import db
from casework.audit import signer
from casework.audit.actions import AuditAction, Outcome
from casework.audit.encoding import GENESIS_HASH, AuditRecord, ChainedRecord, chain
from casework.audit.models import AuditCheckpoint, AuditEntry

# Arbitrary constant naming casework's audit-append lock among advisory locks.
AUDIT_LOCK_KEY = 0x63617365_776F726B & 0x7FFFFFFFFFFFFFFF


@dataclass(frozen=True)
class Actor:
    """Who acts, as the access log names them (ids and roles, never names)."""

    user_id: str | None
    role: str | None
    office: str | None
    device: str | None = None


SYSTEM = Actor(user_id=None, role="system", office=None)
ANONYMOUS = Actor(user_id=None, role=None, office=None)


def record(
    action: AuditAction,
    *,
    target: str | None = None,
    fields: Iterable[str] = (),
    outcome: Outcome = Outcome.SUCCESS,
    actor: Actor | None = None,
    session: Session | None = None,
) -> ChainedRecord:
    """Append one entry and return it sealed in the chain.

    ``actor`` defaults to the request's principal (anonymous when none) or,
    outside a request, to the system. ``fields`` are names, never values.
    """
    current = session if session is not None else db.session()
    head = _read_head(current)
    chained = chain(*_next_link(head, _build(action, target, fields, outcome, actor)))
    # A Core insert: the unit of work would cost more than the rest of the append.
    current.execute(insert(AuditEntry), [AuditEntry.values_of(chained)])
    if has_app_context():  # configuration and keyring live in the application
        signer.checkpoint_if_due(current, chained.seq, head.checkpoint_size, head.checkpoint_at_us)
    return chained


def record_many(
    action: AuditAction,
    targets: Sequence[str | None],
    *,
    fields: Iterable[str] = (),
    outcome: Outcome = Outcome.SUCCESS,
    actor: Actor | None = None,
    session: Session | None = None,
) -> list[ChainedRecord]:
    """Append one entry per target, as :func:`record` would one by one, with one lock,
    one head read and one INSERT; the entries share the actor, the time and the fields.

    A list page shows 50 cases, each recorded under its own reference so that
    the auditor finds every case that was read; appending them together
    costs one round trip instead of a hundred.
    """
    if not targets:
        return []
    current = session if session is not None else db.session()
    head = _read_head(current)
    draft = _build(action, None, fields, outcome, actor)
    seq, prev = (head.seq, bytes(head.hash)) if head.seq else (0, GENESIS_HASH)
    chained: list[ChainedRecord] = []
    for target in targets:
        seq += 1
        entry = chain(prev, replace(draft, seq=seq, target=target))
        chained.append(entry)
        prev = entry.hash
    current.execute(insert(AuditEntry), [AuditEntry.values_of(entry) for entry in chained])
    if has_app_context():
        last = chained[-1].record.seq
        signer.checkpoint_if_due(current, last, head.checkpoint_size, head.checkpoint_at_us)
    return chained


def checkpoint_now(session: Session, actor: Actor | None = None) -> AuditCheckpoint:
    """Record an ``audit.checkpoint`` entry, then sign a checkpoint that covers it.

    When the log does not verify, nothing is signed: the pending changes are
    rolled back, a ``failure`` entry is recorded in their place (the caller
    keeps it; see ``db.persist_despite_error``) and
    :class:`~casework.audit.signer.LogIntegrityError` is raised.
    """
    record(AuditAction.AUDIT_CHECKPOINT, actor=actor, session=session)  # takes the lock
    try:
        return signer.sign_now(session)
    except signer.LogIntegrityError:
        session.rollback()
        record(AuditAction.AUDIT_CHECKPOINT, outcome=Outcome.FAILURE, actor=actor, session=session)
        raise


def _build(
    action: AuditAction,
    target: str | None,
    fields: Iterable[str],
    outcome: Outcome,
    actor: Actor | None,
) -> AuditRecord:
    who = actor or _request_actor()
    return AuditRecord(
        seq=1,  # replaced once the lock is held
        at=datetime.now(UTC),
        actor=who.user_id,
        role=who.role,
        office=who.office,
        device=who.device,
        action=str(action),
        target=target,
        fields=tuple(sorted(set(fields))),
        outcome=str(outcome),
        request_id=g.get("request_id") if has_app_context() else None,
    )


def _request_actor() -> Actor:
    if not has_request_context():
        return SYSTEM
    principal = g.get("principal")
    if principal is None:
        return ANONYMOUS
    return Actor(principal.user_id, principal.role, principal.office, principal.device_id)


def lock_log(session: Session) -> None:
    """Take the append lock until the transaction ends (SQLite: already held)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})


def _read_head(session: Session) -> Row[Any, Any, Any, Any]:
    """Take the append lock, then read the head and the latest checkpoint in one query."""
    lock_log(session)
    return session.execute(_HEAD_QUERY).one()


_HEAD_QUERY = select(
    select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1).scalar_subquery().label("seq"),
    select(AuditEntry.hash)
    .order_by(AuditEntry.seq.desc())
    .limit(1)
    .scalar_subquery()
    .label("hash"),
    select(AuditCheckpoint.size)
    .order_by(AuditCheckpoint.size.desc())
    .limit(1)
    .scalar_subquery()
    .label("checkpoint_size"),
    select(AuditCheckpoint.signed_at_us)
    .order_by(AuditCheckpoint.size.desc())
    .limit(1)
    .scalar_subquery()
    .label("checkpoint_at_us"),
)


def _next_link(head: Row[Any, Any, Any, Any], draft: AuditRecord) -> tuple[bytes, AuditRecord]:
    """The hash the new entry links to, and the draft with its sequence number."""
    seq, prev = (head.seq + 1, bytes(head.hash)) if head.seq else (1, GENESIS_HASH)
    fields = {name: getattr(draft, name) for name in AuditRecord.__slots__}
    fields["seq"] = seq
    return prev, AuditRecord(**fields)


def record_refusal(principal: Any) -> None:
    """Denial hook: drop the request's pending changes, keep one ``authz.denied``."""
    current = db.session()
    current.rollback()
    target = (request.view_args or {}).get("reference") if has_request_context() else None
    record(AuditAction.AUTHZ_DENIED, target=target, outcome=Outcome.DENIED)
    db.persist_despite_error()


@event.listens_for(AuditEntry, "before_update")
@event.listens_for(AuditEntry, "before_delete")
@event.listens_for(AuditCheckpoint, "before_update")
@event.listens_for(AuditCheckpoint, "before_delete")
def _refuse_change(_mapper: Mapper[Any], _connection: Any, _target: object) -> None:
    raise RuntimeError("access-log entries are append-only")


def record_integrity_failure(exc: Any) -> None:
    """Integrity hook: drop the request's pending changes, keep one ``case.integrity_failed``
    naming the case's reference and the table and column where the check failed."""
    current = db.session()
    current.rollback()
    target = (request.view_args or {}).get("reference") if has_request_context() else None
    where = f"{getattr(exc, 'table', '?')}.{getattr(exc, 'column', '?')}"
    record(
        AuditAction.CASE_INTEGRITY_FAILED,
        target=target,
        fields=[where],
        outcome=Outcome.FAILURE,
    )
    db.persist_despite_error()


def init_app(app: Flask) -> None:
    """Record every refused authorisation and every row that fails its integrity check;
    refuse an origin that cannot name the key."""
    signer.check_origin(app)
    app.extensions.setdefault("casework.denial_hooks", []).append(record_refusal)
    app.extensions.setdefault("casework.integrity_hooks", []).append(record_integrity_failure)
