"""Erasure with two people: one supervisor asks, another of the same office approves.

Erasure cannot be undone, so no one person can do it (as for vetting
decisions and hand-offs). A request carries its reason sealed under the case's
data key: the shred that makes the case unrecoverable destroys the reason
too. Approval erases the case in the same transaction
(:func:`casework.cases.service.erase_case`); a request not decided within
``erasure_request_days`` expires. Every step is recorded in the access log
under the case's reference, with field names only. Services never commit.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework import audit
from casework.audit import AuditAction
from casework.authz.access import Principal, require_can, scope_filter
from casework.authz.permissions import Permission
from casework.cases import service
from casework.cases.codes import ErasureStatus
from casework.cases.models import Case, ErasureRequest
from casework.errors import Conflict, FourEyesRequired, ValidationFailed
from casework.pagination import decode_cursor, encode_cursor
from casework.timestamps import utcnow


class RequestClosed(Conflict):
    """409: the request was already decided, was cancelled, or has expired."""

    slug, title = "request-closed", "The erasure request is closed"


def status_of(request: ErasureRequest, now: datetime | None = None) -> ErasureStatus:
    """The request's status as callers see it: a pending one past its expiry is expired."""
    status = ErasureStatus(request.status)
    if status is ErasureStatus.PENDING and (now or utcnow()) >= request.expires_at:
        return ErasureStatus.EXPIRED
    return status


def view(request: ErasureRequest, reference: str, *, reason: str | None = None) -> dict[str, Any]:
    """The request for ``ErasureRequestOut`` (the reason only when the caller read it)."""
    return {
        "id": request.id,
        "reference": reference,
        "status": status_of(request).value,
        "requested_by": request.requested_by,
        "requested_at": request.requested_at,
        "expires_at": request.expires_at,
        "decided_by": request.decided_by,
        "decided_at": request.decided_at,
        "version": request.version,
        "reason": reason,
    }


def request_erasure(
    session: Session, principal: Principal, case: Case, reason: str
) -> dict[str, Any]:
    """Record a pending request to erase ``case`` (already loaded in scope, not erased)."""
    now = utcnow()
    days = int(current_app.config["CASEWORK"]["erasure_request_days"])
    request = ErasureRequest(
        case_id=case.id,
        office_code=case.office_code,
        status=ErasureStatus.PENDING.value,
        requested_by=principal.user_id or "",
        requested_at=now,
        expires_at=now + timedelta(days=days),
        version=1,
    )
    request.reason = reason
    session.add(request)
    session.flush()  # seals the reason while the case's key is in the session
    audit.record(
        AuditAction.ERASURE_REQUEST, target=case.reference, fields=["reason"], session=session
    )
    return view(request, case.reference)


def load_request(
    session: Session, principal: Principal, request_id: uuid.UUID, *, for_update: bool = False
) -> tuple[ErasureRequest, Case]:
    """The request and its case if ``principal`` may decide for the request's office.

    Raises NotFound for a missing request or one of another office (recorded
    as a refusal), as for a case out of scope.
    """
    query = (
        select(ErasureRequest, Case)
        .join(Case, Case.id == ErasureRequest.case_id)
        .where(ErasureRequest.id == request_id)
    )
    if for_update:
        query = query.with_for_update(of=ErasureRequest)
    row = session.execute(query).first()
    request: ErasureRequest = require_can(
        principal, Permission.CASES_ERASE, row[0] if row is not None else None
    )
    assert row is not None
    return request, row[1]


def read_request(session: Session, request: ErasureRequest, case: Case) -> dict[str, Any]:
    """The request with its reason decrypted, recorded as ``erasure.read``.

    Once the case is erased the reason is gone (its key is destroyed): the
    request still answers, with ``reason`` null.
    """
    reason = None if case.is_erased else request.reason
    audit.record(
        AuditAction.ERASURE_READ,
        target=case.reference,
        fields=["reason"] if reason is not None else [],
        session=session,
    )
    return view(request, case.reference, reason=reason)


def list_requests(
    session: Session, principal: Principal, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Requests of the caller's office in id order, without reasons (nothing decrypted)."""
    query = (
        select(ErasureRequest, Case.reference)
        .join(Case, Case.id == ErasureRequest.case_id)
        .where(scope_filter(principal, ErasureRequest.office_code))
    )
    if cursor is not None:
        query = query.where(ErasureRequest.id > _after(cursor))
    rows = session.execute(query.order_by(ErasureRequest.id).limit(limit + 1)).all()
    items = [view(request, reference) for request, reference in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor({"after": str(rows[limit - 1][0].id)})
    return items, next_cursor


def _after(cursor: str) -> uuid.UUID:
    after = decode_cursor(cursor).get("after")
    try:
        return uuid.UUID(str(after))
    except ValueError:
        raise ValidationFailed(errors={"query": {"cursor": ["Not a valid cursor."]}}) from None


def _decide(principal: Principal, request: ErasureRequest, decision: ErasureStatus) -> None:
    """Refuse a closed request (409 request-closed) or the requester (409 four-eyes);
    otherwise record the decision on the request."""
    if status_of(request) is not ErasureStatus.PENDING:
        raise RequestClosed("This erasure request was already decided, or it has expired.")
    if principal.user_id is None or principal.user_id == request.requested_by:
        raise FourEyesRequired("A supervisor other than the requester must decide.")
    request.status = decision.value
    request.decided_by = principal.user_id
    request.decided_at = utcnow()
    request.version += 1


def approve(
    session: Session, principal: Principal, request: ErasureRequest, case: Case
) -> dict[str, Any]:
    """Approve the request and erase its case in this transaction; other pending
    requests for the case are cancelled."""
    _decide(principal, request, ErasureStatus.APPROVED)
    audit.record(AuditAction.ERASURE_APPROVE, target=case.reference, session=session)
    if not case.is_erased:
        service.erase_case(session, case)
    return view(request, case.reference)


def reject(
    session: Session, principal: Principal, request: ErasureRequest, case: Case
) -> dict[str, Any]:
    """Reject the request: the case stays as it is."""
    _decide(principal, request, ErasureStatus.REJECTED)
    audit.record(AuditAction.ERASURE_REJECT, target=case.reference, session=session)
    session.flush()
    return view(request, case.reference)
