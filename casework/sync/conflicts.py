"""Conflicts kept for people: list, read and resolve, each audited.

A conflict belongs to the office of its case; staff of the office (and its
devices, acting for them) read it decrypted. Resolving applies the chosen values
through the case's own update rules, so the resolution reaches every device
through the feed like any other write.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from casework import audit
from casework.audit import AuditAction
from casework.audit.service import record_many
from casework.authz.access import Principal, deny_as_missing
from casework.cases import service as cases
from casework.cases.models import Case
from casework.cases.schemas import CaseUpdateIn
from casework.errors import Conflict, NotFound, ValidationFailed
from casework.pagination import time_id_cursor, time_id_position
from casework.sync.codes import ConflictStatus, Keep
from casework.sync.models import SyncConflict
from casework.timestamps import utcnow


def view(conflict: SyncConflict) -> dict[str, Any]:
    sealed = conflict.fields or {}
    return {
        "id": conflict.id,
        "reference": conflict.reference,
        "device_id": conflict.device_id,
        "mutation_id": conflict.mutation_id,
        "base_version": conflict.base_version,
        "server_version": conflict.server_version,
        "status": conflict.status,
        "created_at": conflict.created_at,
        "fields_": sealed.get("items", []),
    }


def list_open(
    session: Session, principal: Principal, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the office's open conflicts (oldest first), each recorded as a read of
    its case, and the cursor of the next page (None after the last)."""
    if principal.office is None:
        return [], None
    query = (
        select(SyncConflict)
        .where(
            SyncConflict.office_code == principal.office,
            SyncConflict.status == ConflictStatus.OPEN.value,
        )
        .order_by(SyncConflict.created_at, SyncConflict.id)
        .limit(limit + 1)
    )
    if cursor:
        at, after = time_id_position(cursor)
        query = query.where(
            or_(
                SyncConflict.created_at > at,
                and_(SyncConflict.created_at == at, SyncConflict.id > after),
            )
        )
    found = list(session.scalars(query))
    rows = found[:limit]
    views = [view(row) for row in rows]
    record_many(
        AuditAction.SYNC_CONFLICT_READ,
        [row.reference for row in rows],
        fields=["conflict.fields"],
        session=session,
    )
    next_cursor = None
    if len(found) > limit:
        next_cursor = time_id_cursor(rows[-1].created_at, rows[-1].id)
    return views, next_cursor


def get(session: Session, principal: Principal, conflict_id: uuid.UUID) -> SyncConflict:
    """One conflict of the caller's office (404 otherwise, as for a missing one)."""
    conflict = session.get(SyncConflict, conflict_id)
    if conflict is None:
        raise NotFound("No such conflict.")
    if principal.office != conflict.office_code:
        deny_as_missing(principal)
    return conflict


def read(session: Session, conflict: SyncConflict) -> dict[str, Any]:
    audit.record(
        AuditAction.SYNC_CONFLICT_READ,
        target=conflict.reference,
        fields=["conflict.fields"],
        session=session,
    )
    return view(conflict)


def resolve(
    session: Session,
    principal: Principal,
    conflict: SyncConflict,
    keep: Keep,
    changes: Mapping[str, Any] | None,
) -> SyncConflict:
    """Settle a conflict: keep the server's values, take the device's, or apply a merge."""
    if conflict.status != ConflictStatus.OPEN.value:
        raise Conflict("This conflict was already resolved.")
    case = session.scalar(select(Case).where(Case.id == conflict.case_id).with_for_update())
    if case is None or case.is_erased:
        raise cases.CaseErased("The case was erased.")
    items = (conflict.fields or {}).get("items", [])
    if keep == Keep.DEVICE:
        changes = _device_changes(items)
    if keep != Keep.SERVER and changes:
        cases.update_case(session, case, changes)
    conflict.status = ConflictStatus.RESOLVED.value
    conflict.resolved_at = utcnow()
    conflict.resolved_by = _user_id(principal)
    conflict.version += 1
    audit.record(
        AuditAction.SYNC_CONFLICT_RESOLVE,
        target=conflict.reference,
        fields=[f"keep.{keep.value}", *(item["field"] for item in items)],
        session=session,
    )
    session.flush()
    return conflict


def _device_changes(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The device's proposals as a PATCH body, validated like one."""
    body: dict[str, Any] = {}
    change: dict[str, dict[str, Any]] = {}
    remove: list[str] = []
    for item in items:
        parts = item["field"].split(".")
        if parts == ["specific_needs"]:
            body["specific_needs"] = item["device"]
        elif len(parts) == 3:
            change.setdefault(parts[1], {"id": parts[1]})[parts[2]] = item["device"]
        elif len(parts) == 2 and item["device"] is None:
            remove.append(parts[1])
    if change or remove:
        body["members"] = {
            **({"change": list(change.values())} if change else {}),
            **({"remove": remove} if remove else {}),
        }
    if not body:
        return None
    try:
        loaded: dict[str, Any] = CaseUpdateIn().load(body)
    except ValidationError as error:
        raise ValidationFailed(errors={"json": error.messages}) from None
    return loaded


def _user_id(principal: Principal) -> uuid.UUID | None:
    try:
        return uuid.UUID(principal.user_id or "")
    except ValueError:
        return None
