"""Duplicate registrations and possible impostors, looked up across every office.

A person registered twice (or an impostor using someone's document) may sit
in another office. The blind indexes of *all* offices are searched and each
candidate is decrypted to confirm, server-side. The caller learns only about
cases in their own scope; a confirmed match in another office becomes a
:class:`~casework.cases.models.DuplicateAlert` that supervisors and vetting
officers of both offices see, each with their own case's reference only, so
the caseworker cannot use intake to probe another office's records.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from casework import audit
from casework.audit import AuditAction
from casework.authz.access import Principal, in_scope
from casework.cases import indexes
from casework.cases.indexes import keyring_of
from casework.cases.models import Case, DuplicateAlert
from casework.errors import ValidationFailed
from casework.pagination import decode_cursor, encode_cursor
from casework.timestamps import utcnow

#: The member fields each index reads, as the access log names them.
INDEX_FIELDS: dict[str, list[str]] = {
    indexes.DOCUMENT_NUMBER: ["members.documents"],
    indexes.NAME_BIRTH_YEAR: [
        "members.birth_year",
        "members.date_of_birth",
        "members.full_name",
        "members.other_names",
    ],
}
CHECKED_FIELDS = sorted({name for names in INDEX_FIELDS.values() for name in names})


def _matches(session: Session, case: Case) -> dict[uuid.UUID, tuple[Case, set[str]]]:
    """Other cases sharing a document or a name and birth year with ``case``, any office,
    with the names of the indexes that matched (confirmed by decrypting)."""
    probes = set().union(*(indexes.stored_probes(m) for m in case.members))
    matched: dict[uuid.UUID, tuple[Case, set[str]]] = {}
    candidates = indexes.lookup(session, keyring_of(session), probes, exclude_case=case.id)
    _held = indexes.prefetch_keys(session, (c.case_id for c in candidates))
    for candidate in candidates:
        shared = indexes.stored_probes(candidate) & probes
        if shared:
            _case, names = matched.setdefault(candidate.case_id, (candidate.case, set()))
            names.update(probe.index for probe in shared)
    return matched


def find_duplicates(session: Session, principal: Principal, case: Case) -> list[str]:
    """References of the caller's cases that may be the same people as ``case``.

    Matches in offices outside the caller's scope are not returned: they
    raise alerts instead (:func:`raise_alert`).
    """
    in_reach: list[str] = []
    for other, names in _matches(session, case).values():
        if in_scope(principal, other.office_code):
            in_reach.append(other.reference)
            continue
        for name in sorted(names):
            raise_alert(session, case, other, name)
    return sorted(in_reach)


def check_duplicates(session: Session, principal: Principal, case: Case) -> list[str]:
    """:func:`find_duplicates` on demand, recorded as ``case.duplicates``."""
    found = find_duplicates(session, principal, case)
    audit.record(
        AuditAction.CASE_DUPLICATES, target=case.reference, fields=CHECKED_FIELDS, session=session
    )
    return found


def raise_alert(session: Session, case: Case, other: Case, matched_on: str) -> bool:
    """Record that ``case`` and ``other`` may be one person; False if already recorded.

    Both cases' references get an ``alert.raise`` entry, so each office's
    auditors find it under their own case.
    """
    first, second = sorted((case, other), key=lambda c: c.id)
    session.flush()  # a case just registered must exist before an alert names it
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    # Two offices may detect the same pair at once: the later insert waits for the
    # earlier one and then does nothing, instead of failing on the unique key.
    inserted = session.scalar(
        dialect.insert(DuplicateAlert)
        .values(
            id=uuid.uuid4(),
            case_id=first.id,
            other_case_id=second.id,
            matched_on=matched_on,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing()
        .returning(DuplicateAlert.id)
    )
    if inserted is None:
        return False
    for target in (case, other):
        audit.record(
            AuditAction.ALERT_RAISE,
            target=target.reference,
            fields=INDEX_FIELDS[matched_on],
            session=session,
        )
    return True


def _after(cursor: str) -> tuple[datetime.datetime, uuid.UUID]:
    position = decode_cursor(cursor)
    try:
        at = datetime.datetime.fromisoformat(position["t"])
        alert_id = uuid.UUID(position["id"])
    except (KeyError, TypeError, ValueError):
        raise ValidationFailed(errors={"query": {"cursor": ["Not a valid cursor."]}}) from None
    if at.tzinfo is None:
        raise ValidationFailed(errors={"query": {"cursor": ["Not a valid cursor."]}})
    return at, alert_id


def list_alerts(
    session: Session, principal: Principal, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Alerts that involve a case of the caller's office, newest first.

    Each alert shows both offices but only the references the caller may
    see; each listed alert is recorded as ``alert.read`` under those.
    """
    if principal.office is None:
        return [], None
    first, second = aliased(Case), aliased(Case)
    query = (
        select(DuplicateAlert, first, second)
        .join(first, first.id == DuplicateAlert.case_id)
        .join(second, second.id == DuplicateAlert.other_case_id)
        .where(or_(first.office_code == principal.office, second.office_code == principal.office))
    )
    if cursor:
        at, alert_id = _after(cursor)
        query = query.where(
            or_(
                DuplicateAlert.created_at < at,
                and_(DuplicateAlert.created_at == at, DuplicateAlert.id < alert_id),
            )
        )
    query = query.order_by(DuplicateAlert.created_at.desc(), DuplicateAlert.id.desc())
    rows = session.execute(query.limit(limit + 1)).all()
    items = [_alert_view(session, principal, alert, a, b) for alert, a, b in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last: DuplicateAlert = rows[limit - 1][0]
        next_cursor = encode_cursor({"t": last.created_at.isoformat(), "id": str(last.id)})
    return items, next_cursor


def _alert_view(
    session: Session, principal: Principal, alert: DuplicateAlert, *cases: Case
) -> dict[str, Any]:
    shown = []
    for case in cases:
        visible = in_scope(principal, case.office_code)
        shown.append({"office": case.office_code, "reference": case.reference if visible else None})
        if visible:
            audit.record(
                AuditAction.ALERT_READ,
                target=case.reference,
                fields=["matched_on"],
                session=session,
            )
    return {
        "id": alert.id,
        "matched_on": alert.matched_on,
        "created_at": alert.created_at,
        "cases": shown,
    }
