"""Reading many cases: filtered lists, exact search, and a case's change history.

Every case shown is recorded in the access log, one entry per case, because
even a summary carries special-category data (the specific-needs codes); the
entries of one page are appended together (:func:`~casework.audit.service.record_many`).
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, load_only

from casework import audit
from casework.audit import AuditAction
from casework.audit.models import AuditEntry, from_micros
from casework.audit.service import record_many
from casework.authz.access import Principal, scope_filter
from casework.cases import indexes
from casework.cases.indexes import Probe, keyring_of
from casework.cases.models import Case, CaseMember
from casework.cases.service import plain
from casework.errors import ValidationFailed
from casework.pagination import decode_cursor, encode_cursor

SUMMARY_FIELDS = ("member_count", "resettlement_stage", "specific_needs", "stage")
UNINDEXABLE = "Must contain at least one letter or digit."
# What the change history shows: writes to a case, not reads of it.
HISTORY_ACTIONS = frozenset(
    {
        AuditAction.CASE_CREATE,
        AuditAction.CASE_UPDATE,
        AuditAction.CASE_TRANSITION,
        AuditAction.CASE_CLOSE,
        AuditAction.CASE_REOPEN,
        AuditAction.CASE_SHRED,
        AuditAction.ERASURE_REQUEST,
        AuditAction.ERASURE_APPROVE,
        AuditAction.ERASURE_REJECT,
        AuditAction.CONSENT_RECORD,
        AuditAction.CONSENT_WITHDRAW,
        AuditAction.HANDOFF_REQUEST,
        AuditAction.HANDOFF_APPROVE,
        AuditAction.HANDOFF_ACCEPT,
        AuditAction.HANDOFF_DECLINE,
        AuditAction.HANDOFF_REVOKE,
    }
)

# --- lists ---------------------------------------------------------------------------------

MEMBER_FILTERS = ("nationality_status", "birth_registration")


@dataclass(frozen=True)
class CaseFilters:
    """``GET /api/v1/cases`` filters; the last three are encrypted attributes."""

    stage: str | None = None
    resettlement_stage: str | None = None
    office: str | None = None
    specific_need: str | None = None
    nationality_status: str | None = None
    birth_registration: str | None = None

    @property
    def encrypted(self) -> bool:
        return any((self.specific_need, self.nationality_status, self.birth_registration))

    def names(self) -> list[str]:
        """Field names the filters read (for the access log)."""
        names = {
            "specific_needs" if name == "specific_need" else name
            for name, value in vars(self).items()
            if value is not None
        }
        return sorted(f"members.{n}" if n in MEMBER_FILTERS else n for n in names)


def _position(case: Case) -> str:
    return encode_cursor({"t": case.created_at.isoformat(), "id": str(case.id)})


def _after(cursor: str) -> tuple[datetime.datetime, uuid.UUID]:
    position = decode_cursor(cursor)
    try:
        at = datetime.datetime.fromisoformat(position["t"])
        case_id = uuid.UUID(position["id"])
    except (KeyError, TypeError, ValueError):
        raise ValidationFailed(errors={"query": {"cursor": ["Not a valid cursor."]}}) from None
    if at.tzinfo is None:
        raise ValidationFailed(errors={"query": {"cursor": ["Not a valid cursor."]}})
    return at, case_id


def _scoped_query(principal: Principal, filters: CaseFilters, cursor: str | None) -> Any:
    query = select(Case).where(scope_filter(principal, Case.office_code), Case.erased_at.is_(None))
    if filters.stage:
        query = query.where(Case.stage == filters.stage)
    if filters.resettlement_stage:
        query = query.where(Case.resettlement_stage == filters.resettlement_stage)
    if filters.office:
        query = query.where(Case.office_code == filters.office)
    if cursor:
        at, case_id = _after(cursor)
        query = query.where(
            or_(Case.created_at < at, and_(Case.created_at == at, Case.id < case_id))
        )
    return query.order_by(Case.created_at.desc(), Case.id.desc())


def _members_match(session: Session, cases: Sequence[Case], filters: CaseFilters) -> set[uuid.UUID]:
    """Ids of the cases with a member matching the member filters (decrypts one field each)."""
    wanted = {n: getattr(filters, n) for n in MEMBER_FILTERS if getattr(filters, n)}
    if not wanted:
        return {case.id for case in cases}
    ciphertexts = [getattr(CaseMember, getattr(CaseMember, n).storage_attr) for n in wanted]
    members = session.scalars(
        select(CaseMember)
        .options(load_only(CaseMember.case_id, *ciphertexts))
        .where(CaseMember.case_id.in_([c.id for c in cases]))
    )
    return {
        m.case_id
        for m in members
        if all(getattr(m, name) == value for name, value in wanted.items())
    }


def _filter_batch(session: Session, cases: Sequence[Case], filters: CaseFilters) -> list[Case]:
    _held = indexes.prefetch_keys(session, (c.id for c in cases))
    if filters.specific_need:
        cases = [c for c in cases if filters.specific_need in (c.specific_needs or [])]
    matching = _members_match(session, cases, filters)
    return [case for case in cases if case.id in matching]


def list_cases(
    session: Session,
    principal: Principal,
    filters: CaseFilters,
    *,
    limit: int,
    cursor: str | None,
    scan_limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of summaries of the caller's cases, newest first, and the next cursor.

    Plaintext filters run in SQL. Encrypted ones cannot: the cases in scope
    are read in batches, the filtered attribute alone is decrypted, and the
    scan stops when the page is full or after ``scan_limit`` cases; then the
    page may hold fewer than ``limit`` cases while ``next_cursor`` is set
    (the client asks again to continue the scan).
    """
    page, next_cursor = _page(session, principal, filters, limit, cursor, scan_limit)
    return summaries(session, page, AuditAction.CASE_LIST, filters.names()), next_cursor


def _page(
    session: Session,
    principal: Principal,
    filters: CaseFilters,
    limit: int,
    cursor: str | None,
    scan_limit: int,
) -> tuple[list[Case], str | None]:
    query = _scoped_query(principal, filters, cursor)
    if not filters.encrypted:
        rows = list(session.scalars(query.limit(limit + 1)))
        return rows[:limit], (_position(rows[limit - 1]) if len(rows) > limit else None)
    batch_size = min(max(limit * 2, 50), scan_limit)
    page: list[Case] = []
    scanned = 0
    while scanned < scan_limit:
        batch = list(session.scalars(query.offset(scanned).limit(batch_size)))
        for case in _filter_batch(session, batch, filters):
            page.append(case)
            if len(page) == limit:
                return page, _position(case)
        scanned += len(batch)
        if len(batch) < batch_size:
            return page, None
    last = session.scalars(query.offset(scanned - 1).limit(1)).first()
    return page, (_position(last) if last is not None else None)


def member_counts(session: Session, cases: Sequence[Case]) -> dict[uuid.UUID, int]:
    query = (
        select(CaseMember.case_id, func.count())
        .where(CaseMember.case_id.in_([c.id for c in cases]))
        .group_by(CaseMember.case_id)
    )
    return {row[0]: row[1] for row in session.execute(query)}


def summaries(
    session: Session,
    cases: Sequence[Case],
    action: AuditAction,
    read_fields: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """List views of ``cases`` (no member is decrypted), each recorded under ``action``.

    A summary shows the specific-needs codes, special-category data, so every
    case listed gets its own access-log entry: "who saw that this person has
    an SGBV code" stays answerable.
    """
    if not cases:
        return []
    counts = member_counts(session, cases)
    _held = indexes.prefetch_keys(session, (c.id for c in cases))
    fields = sorted({*SUMMARY_FIELDS, *read_fields})
    views = [
        {
            "reference": case.reference,
            "office": case.office_code,
            "stage": case.stage,
            "resettlement_stage": case.resettlement_stage,
            "member_count": counts.get(case.id, 0),
            "specific_needs": case.specific_needs or [],
        }
        for case in cases
    ]
    # Still one entry per case, appended together: one lock, one head read, one INSERT.
    record_many(action, [case.reference for case in cases], fields=fields, session=session)
    return views


# --- search --------------------------------------------------------------------------------


def _search_probe(query: Mapping[str, Any]) -> tuple[Probe, list[str]]:
    if "document_number" in query:
        key = indexes.document_key(query["document_number"])
        if key is None:
            raise ValidationFailed(errors={"json": {"document_number": [UNINDEXABLE]}})
        return Probe(indexes.DOCUMENT_NUMBER, (key,)), ["members.documents"]
    parts = indexes.name_year_key(query["full_name"], query["birth_year"])
    if parts is None:
        raise ValidationFailed(errors={"json": {"full_name": [UNINDEXABLE]}})
    return Probe(indexes.NAME_BIRTH_YEAR, parts), ["members.birth_year", "members.full_name"]


def _has_document(member: CaseMember, key: str, kind: str | None) -> bool:
    return any(
        indexes.document_key(d["number"]) == key and kind in (None, d["type"])
        for d in member.documents or ()
    )


def search(
    session: Session, principal: Principal, query: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Summaries of the cases in the caller's scope with a member matching ``query``
    (``SearchIn`` data) exactly; each found case is recorded as ``case.search``.

    The blind index proposes candidates of the caller's office only; each is
    decrypted to confirm, so truncation collisions never reach the caller.
    """
    probe, read = _search_probe(query)
    keyring = keyring_of(session)
    found: dict[uuid.UUID, Case] = {}
    if principal.office is not None:
        kind = plain(query.get("document_type"))
        for member in indexes.lookup(session, keyring, [probe], office=principal.office):
            if probe.index == indexes.DOCUMENT_NUMBER:
                confirmed = _has_document(member, probe.parts[0], kind)
            else:
                confirmed = probe in indexes.stored_probes(member)
            if confirmed:
                found.setdefault(member.case_id, member.case)
    if not found:
        audit.record(AuditAction.CASE_SEARCH, fields=read, session=session)
    return summaries(session, list(found.values()), AuditAction.CASE_SEARCH, read)


# --- history -------------------------------------------------------------------------------


def history(
    session: Session, case: Case, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Who changed which fields of ``case`` and when, oldest first, from the access log.

    The access log already holds, for every write and in the same
    transaction, the actor, the time and the field names, hash-chained so
    that an edited history is detectable; a second history table could only
    disagree with it. Values are never kept anywhere, so none are shown.
    """
    query = select(AuditEntry).where(
        AuditEntry.target == case.reference,
        AuditEntry.action.in_([str(a) for a in HISTORY_ACTIONS]),
    )
    if cursor:
        after = decode_cursor(cursor).get("after")
        if not isinstance(after, int) or isinstance(after, bool):
            raise ValidationFailed(errors={"query": {"cursor": ["Not a valid cursor."]}})
        query = query.where(AuditEntry.seq > after)
    rows = list(session.scalars(query.order_by(AuditEntry.seq).limit(limit + 1)))
    next_cursor = encode_cursor({"after": rows[limit - 1].seq}) if len(rows) > limit else None
    entries = [
        {
            "at": from_micros(row.at_us),
            "actor": row.actor,
            "role": row.role,
            "office": row.office,
            "action": row.action,
            "fields": json.loads(row.fields),
        }
        for row in rows[:limit]
    ]
    audit.record(AuditAction.CASE_HISTORY, target=case.reference, session=session)
    return entries, next_cursor
