"""Reading many cases: filtered lists, exact search, and a case's change history.

Every case shown is recorded in the access log, one entry per case, because
even a summary carries special-category data (the specific-needs codes); the
entries of one page are appended together (:func:`~casework.audit.service.record_many`).
"""

from __future__ import annotations

import datetime
import functools
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select
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
from casework.security.case_keys import data_key_cache
from casework.security.columns import read_sealed_rows, sealed_attributes
from casework.security.envelope import WrappedKey
from casework.security.models import CaseKey

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


def _position(case: Any) -> str:
    """The cursor after ``case`` (a Case or a summary row: both have the time and the id)."""
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


def _scoped_query(
    principal: Principal, filters: CaseFilters, cursor: str | None, query: Any = None
) -> Any:
    """``query`` (default: the cases) limited to the caller's live cases matching the
    plaintext filters, after ``cursor``, newest first."""
    query = select(Case) if query is None else query
    query = query.where(scope_filter(principal, Case.office_code), Case.erased_at.is_(None))
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
    if not filters.encrypted:
        # One statement: the page's rows with their member counts and wrapped keys.
        if principal.office is None:  # scope_filter: an officeless caller lists nothing
            return [], None
        shape, values = _plain_filters(filters, cursor)
        values.update(scope=principal.office, size=limit + 1)
        rows = list(session.execute(_page_statement(shape), values))
        next_cursor = _position(rows[limit - 1]) if len(rows) > limit else None
        _prime_keys(session, rows[:limit])
        views = _summary_views(session, rows[:limit])
        _record(session, views, AuditAction.CASE_LIST, filters.names())
        return views, next_cursor
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


@functools.cache
def _summary_query() -> Any:
    """The columns a summary shows, with the member count and the wrapped data key (built
    once: statements are immutable, and building one costs more than running it)."""
    count = (
        select(func.count())
        .where(CaseMember.case_id == Case.id)
        .correlate(Case)
        .scalar_subquery()
        .label("member_count")
    )
    return select(
        Case.id,
        Case.reference,
        Case.office_code,
        Case.stage,
        Case.resettlement_stage,
        Case.created_at,
        *sealed_attributes(Case),
        CaseKey.kek_id,
        CaseKey.wrapped_key,
        count,
    ).outerjoin(CaseKey, CaseKey.case_id == Case.id)


_PLAIN_FILTERS = {
    "stage": "stage",
    "resettlement_stage": "resettlement_stage",
    "office": "office_code",
}


def _plain_filters(
    filters: CaseFilters, cursor: str | None
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Which of :func:`_page_statement`'s optional conditions apply, and their values."""
    values: dict[str, Any] = {
        name: getattr(filters, name) for name in _PLAIN_FILTERS if getattr(filters, name)
    }
    shape = tuple(values)
    if cursor:
        values["at"], values["after"] = _after(cursor)
        shape += ("after",)
    return shape, values


@functools.cache
def _page_statement(shape: tuple[str, ...]) -> Any:
    """:func:`_summary_query`'s columns for one page of :func:`_scoped_query` (the caller's
    office bound as ``scope``, the plaintext filters and the cursor of ``shape``, ``size``
    rows), built once per shape.

    The page's ids are chosen first, then joined: the member counts and the keys are
    read for the page only, not for every case the sort sees (cases registered in one
    batch share their time, so the sort by id may see thousands).
    """
    page = select(Case.id).where(Case.office_code == bindparam("scope"), Case.erased_at.is_(None))
    for name in shape:
        if name in _PLAIN_FILTERS:
            page = page.where(getattr(Case, _PLAIN_FILTERS[name]) == bindparam(name))
    if "after" in shape:
        at: Any = bindparam("at")
        after: Any = bindparam("after")
        page = page.where(or_(Case.created_at < at, and_(Case.created_at == at, Case.id < after)))
    chosen = (
        page.order_by(Case.created_at.desc(), Case.id.desc())
        .limit(bindparam("size"))
        .subquery("page")
    )
    return (
        _summary_query()
        .join(chosen, chosen.c.id == Case.id)
        .order_by(Case.created_at.desc(), Case.id.desc())
    )


@functools.cache
def _summaries_by_id() -> Any:
    return _summary_query().where(Case.id.in_(bindparam("ids", expanding=True)))


def _summary_rows(session: Session, case_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """:func:`_summary_query` rows of these cases by id, their wrapped keys primed in the
    session's key cache (unwrapped on first use)."""
    wanted = set(case_ids)
    if not wanted:
        return {}
    found = session.execute(_summaries_by_id(), {"ids": list(wanted)})
    rows = {row[0]: row for row in found}
    _prime_keys(session, rows.values())
    return rows


@functools.cache
def _at() -> dict[str, int]:
    """Where each column of :func:`_summary_query` sits in its rows: a row is read by
    position (a named attribute or ``_mapping`` costs more per row than the rest)."""
    return {name: i for i, name in enumerate(_summary_query().selected_columns.keys())}


@functools.cache
def _sealed_span() -> slice:
    """Where a summary row holds :func:`sealed_attributes` (listed together, in order)."""
    at = _at()
    names = [column.key for column in sealed_attributes(Case)]
    return slice(at[names[0]], at[names[-1]] + 1)


def _prime_keys(session: Session, rows: Iterable[Any]) -> None:
    cache = data_key_cache(session)
    at = _at()
    kek, blob = at["kek_id"], at["wrapped_key"]
    cache.prime(
        {
            row[0]: WrappedKey(row[kek], bytes(row[blob]))
            for row in rows
            if row[blob] is not None and row[0] not in cache
        }
    )


def _summary_views(session: Session, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Summaries of :func:`_summary_query` rows (keys primed): the needs codes decrypted
    under each case's key once the row seal is checked."""
    at = _at()
    sealed = _sealed_span()
    opened = read_sealed_rows(session, Case, [(row[0], row[sealed]) for row in rows], _NEEDS)
    reference, office, stage = at["reference"], at["office_code"], at["stage"]
    resettlement, members = at["resettlement_stage"], at["member_count"]
    return [
        {
            "reference": row[reference],
            "office": row[office],
            "stage": row[stage],
            "resettlement_stage": row[resettlement],
            "member_count": row[members],
            "specific_needs": values["specific_needs"] or [],
        }
        for row, values in zip(rows, opened, strict=True)
    ]


_NEEDS = ("specific_needs",)


def _record(
    session: Session, views: Sequence[Mapping[str, Any]], action: AuditAction, read: Iterable[str]
) -> None:
    """One access-log entry per case shown, appended together (one lock, one INSERT)."""
    if views:
        fields = sorted({*SUMMARY_FIELDS, *read})
        record_many(action, [v["reference"] for v in views], fields=fields, session=session)


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
    rows = _summary_rows(session, (case.id for case in cases))
    views = _summary_views(session, [rows[case.id] for case in cases])
    _record(session, views, action, read_fields)
    return views


# --- search --------------------------------------------------------------------------------


def _search_probes(query: Mapping[str, Any]) -> tuple[set[Probe], list[str]]:
    """The probes of a search: one document key, or the name keys duplicate detection
    uses (order, separators and romanisation set aside) at the given year."""
    if "document_number" in query:
        key = indexes.document_key(query["document_number"])
        if key is None:
            raise ValidationFailed(errors={"json": {"document_number": [UNINDEXABLE]}})
        return {Probe(indexes.DOCUMENT_NUMBER, (key,))}, ["members.documents"]
    probes = indexes.name_probes(query["full_name"], [query["birth_year"]])
    if not probes:
        raise ValidationFailed(errors={"json": {"full_name": [UNINDEXABLE]}})
    return probes, ["members.birth_year", "members.full_name"]


def _has_document(member: Mapping[str, Any], key: str, kind: str | None) -> bool:
    """Whether a member's decrypted ``documents`` hold one of this number (and kind)."""
    return any(
        indexes.document_key(d["number"]) == key and kind in (None, d["type"])
        for d in member["documents"] or ()
    )


_DOCUMENTS = ("documents",)


def search(
    session: Session, principal: Principal, query: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Summaries of the cases in the caller's scope with a member matching ``query``
    (``SearchIn`` data) exactly; each found case is recorded as ``case.search``.

    The blind index proposes candidates of the caller's office only; each is
    decrypted to confirm (its documents, or what its name keys are made of), so
    truncation collisions never reach the caller.
    """
    probes, read = _search_probes(query)
    keyring = keyring_of(session)
    found: dict[uuid.UUID, Any] = {}
    if principal.office is not None:
        kind = plain(query.get("document_type"))
        by_document = "document_number" in query
        fields = _DOCUMENTS if by_document else indexes.PLAIN_FIELDS
        candidates = indexes.candidates(
            session, keyring, probes, office=principal.office, fields=fields
        )
        rows = _summary_rows(session, (candidate.case_id for candidate in candidates))
        for candidate in candidates:
            if by_document:
                (probe,) = probes
                confirmed = _has_document(candidate.plain, probe.parts[0], kind)
            else:
                confirmed = bool(probes & indexes.member_probes(candidate.plain))
            if confirmed:
                found.setdefault(candidate.case_id, rows[candidate.case_id])
    if not found:
        audit.record(AuditAction.CASE_SEARCH, fields=read, session=session)
        return []
    views = _summary_views(session, list(found.values()))
    _record(session, views, AuditAction.CASE_SEARCH, read)
    return views


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
