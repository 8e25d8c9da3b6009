"""Cases: intake, read, change and erasure of one case. Services never commit.

Every function that reads or writes case data records it in the access log
in the same transaction, with field *names* only. The keyring comes from the
session (each request session carries it), so the keyring that encrypts a
case is the one that indexes it. Lists, search and history are in
:mod:`casework.cases.queries`; duplicate detection and alerts in
:mod:`casework.cases.duplicates`; blind indexes in :mod:`casework.cases.indexes`.
"""

from __future__ import annotations

import datetime
import enum
import functools
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app, has_app_context
from sqlalchemy import Table, and_, bindparam, delete, event, func, insert, inspect, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, joinedload, make_transient_to_detached
from sqlalchemy.orm.attributes import flag_dirty

from casework import audit
from casework.audit import AuditAction
from casework.audit.service import record_many
from casework.authz.access import Principal, deny, in_scope, require_can
from casework.authz.permissions import Permission
from casework.cases import duplicates, erasure, indexes, rules
from casework.cases.codes import ErasureStatus, ResettlementStage, Stage
from casework.cases.indexes import keyring_of
from casework.cases.models import (
    MEMBER_FIELDS,
    BlindIndexEntry,
    Case,
    CaseMember,
    DuplicateAlert,
    DuplicateCheck,
    ErasureRequest,
)
from casework.cases.reference import InvalidReference, new_reference, normalise_reference
from casework.db import Base
from casework.errors import CaseworkError, NotFound, ValidationFailed
from casework.offices.models import Office
from casework.security.case_keys import (
    SESSION_INFO_KEY,
    data_key_cache,
    provision_new_case_keys,
)
from casework.security.columns import (
    RowIds,
    assign_sealed,
    erase_ciphertext,
    read_sealed,
    row_seal_for,
    seal_new_row,
)
from casework.security.data_key_cache import DataKeyCache
from casework.security.envelope import DataKey, WrappedKey, new_data_key, wrap_data_key
from casework.security.keyring import Keyring
from casework.security.models import CaseKey
from casework.security.shredding import shred
from casework.timestamps import utcnow

CASE_FIELDS = (
    "reference",
    "office",
    "stage",
    "resettlement_stage",
    "specific_needs",
    "version",
    "created_at",
    "updated_at",
)
# Member fields the household rules read: a PATCH decrypts these, never narratives.
RULE_FIELDS = (
    "relationship",
    "sex",
    "birth_year",
    "date_of_birth",
    "birth_registration",
    "nationality_status",
    "mother",
    "registration_risk",
)
INDEXED_FIELDS = frozenset({"documents", "full_name", "other_names", "birth_year", "date_of_birth"})
log = logging.getLogger("casework.cases")
NO_SUCH_MEMBER = "No such member in this case."
NO_SUCH_OFFICE = "No such active office."
NO_OFFICE = "Your account belongs to no office: it cannot register cases."
OTHER_OFFICE = "Cases can only be registered for your own office."


class CaseErased(CaseworkError):
    """410: the case existed in the caller's scope and was crypto-shredded.

    Only callers who may see the case get it; to anyone else an erased case
    answers 404 like any other, so erasure reveals nothing either.
    """

    status, slug, title = 410, "gone", "The case was erased"


def plain(value: Any) -> Any:
    """Schema output made storable: enum members become their values, recursively."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


# --- loading -------------------------------------------------------------------------------


def load_case(
    session: Session,
    principal: Principal,
    reference: str,
    permission: Permission,
    *,
    for_update: bool = False,
    allow_erased: bool = False,
    for_read: bool = False,
) -> Case:
    """The case ``reference`` if ``principal`` may use it with ``permission``.

    Raises NotFound for a malformed, missing or out-of-scope reference (the
    last one also recorded as a refusal), and :class:`CaseErased` for an
    erased case in scope unless ``allow_erased``. ``for_update`` locks the row
    so that concurrent writers queue up and see each other's version.
    ``for_read``: for :func:`read_case` with ``json_ready`` (the case read), which
    takes the members from the stored view of the case's version when one is
    registered (:func:`store_views_in`): that row comes instead of the members.
    """
    try:
        canonical = normalise_reference(reference)
    except InvalidReference:
        raise NotFound("No such resource.") from None
    # One statement: the case, its members and its wrapped data key (primed in the
    # session's key cache, so the first decryption needs no second SELECT).
    # A read also brings the registered one-row-per-case tables (the workflow row); a
    # locked load does not, so that what a write changes is always read under its lock.
    companions = () if for_update else _companions()
    stored = _stored_views() if for_read and not for_update else None
    query = _load_statement(for_update, companions, stored)
    result = session.execute(query, {"reference": canonical})
    # Only the joined members repeat the case's row; the stored view's one row does not.
    row = (result if stored is not None else result.unique()).first()
    case: Case = require_can(principal, permission, row[0] if row is not None else None)
    if case.is_erased and not allow_erased:
        raise CaseErased("This case was erased; only its change history remains.")
    assert row is not None
    if row.wrapped_key is not None:
        keys = session.info.get(SESSION_INFO_KEY)
        if isinstance(keys, DataKeyCache):
            keys.prime({case.id: WrappedKey(row.kek_id, bytes(row.wrapped_key))})
    if companions:
        loaded = session.info.setdefault(_COMPANIONS_LOADED, {})
        for position, model in enumerate(companions, start=3):
            loaded[(model, case.id)] = row[position]
    if stored is not None:
        session.info.setdefault(_STORED_LOADED, {})[case.id] = tuple(row)[-len(stored.columns) :]
    return case


@functools.cache
def _load_statement(
    for_update: bool, companions: tuple[type[Any], ...], stored: StoredViews | None = None
) -> Any:
    """:func:`load_case`'s statement, built once per shape: building a statement and its
    cache key costs more than running it (about a millisecond a request).

    ``stored``: the registered stored views, whose columns of the row at the case's
    version come last, instead of the members (loaded on first use if they are needed).
    """
    query = (
        select(Case, CaseKey.kek_id, CaseKey.wrapped_key)
        .outerjoin(CaseKey, CaseKey.case_id == Case.id)
        .where(Case.reference == bindparam("reference"))
    )
    if stored is None:
        query = query.options(joinedload(Case.members))
    for model in companions:
        query = query.add_columns(model).outerjoin(model, model.case_id == Case.id)
    if stored is not None:
        model = stored.model
        query = query.add_columns(*stored.columns).outerjoin(
            model, and_(model.case_id == Case.id, model.version == Case.version)
        )
    if for_update:
        query = query.with_for_update(of=Case)
    return query


_COMPANIONS = "casework.case_companions"
_COMPANIONS_LOADED = "casework.case_companions_loaded"


def load_with_case(app: Flask, model: type[Any]) -> None:
    """Have :func:`load_case` (unlocked) fetch ``model``'s row of the case in its statement.

    ``model`` has at most one row per case, keyed by ``case_id`` (the workflow's
    states): a case read that shows it then needs no statement of its own; see
    :func:`loaded_with_case`.
    """
    registered: list[type[Any]] = app.extensions.setdefault(_COMPANIONS, [])
    if model not in registered:
        registered.append(model)


def _companions() -> tuple[type[Any], ...]:
    if not has_app_context():
        return ()
    return tuple(current_app.extensions.get(_COMPANIONS, ()))


def loaded_with_case(session: Session, model: type[Any], case: Case) -> tuple[bool, Any]:
    """``(True, row or None)`` when this session's :func:`load_case` of ``case`` fetched
    ``model``'s row with it; ``(False, None)`` otherwise (the caller asks for it).

    Only for the read that follows the load: a row the request adds later is not seen.
    """
    loaded: dict[tuple[type[Any], Any], Any] = session.info.get(_COMPANIONS_LOADED, {})
    key = (model, case.id)
    return (True, loaded[key]) if key in loaded else (False, None)


# --- views ---------------------------------------------------------------------------------


def member_view(member: CaseMember, stored: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A member decrypted for the API (``MemberOut``): the row's key and seal once.

    ``stored``: the member's sealed values when the caller holds them already
    (:func:`stored_values`), so they are not decrypted again.
    """
    view: dict[str, Any] = {"id": member.id, "relationship": member.relationship}
    view.update(read_sealed(member, _SEALED_MEMBER_FIELDS) if stored is None else stored)
    view["unnamed"] = view["full_name"] is None
    view["other_names"] = view["other_names"] or []
    view["documents"] = view["documents"] or []
    return view


def case_view(
    case: Case, stored: Mapping[uuid.UUID, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """A whole case decrypted for the API (``CaseOut``); ``stored``: members' sealed values
    already in hand, by member id (:func:`stored_values`)."""
    known = stored or {}
    return _case_fields(
        case, [member_view(member, known.get(member.id)) for member in case.members]
    )


def _case_fields(case: Case, members: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "reference": case.reference,
        "office": case.office_code,
        "stage": case.stage,
        "resettlement_stage": case.resettlement_stage,
        "specific_needs": case.specific_needs or [],
        "version": case.version,
        "created_at": case.created_at,
        "updated_at": case.updated_at,
        "members": members,
    }


@dataclass(frozen=True)
class StoredViews:
    """A feature that keeps the case view sealed at every version the case reaches (the
    sync feed's snapshots): the case read takes the members from there, one decryption
    instead of one per member (each checking its row seal).

    ``model`` has one row per ``(case_id, version)``; :func:`load_case` selects its
    ``columns`` of the row at the case's version (plain columns: no ORM object to build),
    all None when there is none. ``open(session, values, case)`` returns that row's view
    as JSON (:func:`~casework.api.jsonable` of :func:`case_view` at least), its seal
    checked, or None for no row: RowIntegrityError when the row or its view is not
    genuinely the one of ``case`` at that version, never a silent substitute.
    """

    model: type[Any]
    columns: tuple[Any, ...]
    open: Callable[[Session, Sequence[Any], Case], Mapping[str, Any] | None]


_STORED_VIEWS = "casework.case_stored_views"
_STORED_LOADED = "casework.case_stored_view_loaded"
#: A member of a stored view, in :func:`member_view`'s order (a sealed view keeps its
#: keys sorted): a view of another shape (an older release's) is not used.
_MEMBER_VIEW_KEYS = ("id", *MEMBER_FIELDS, "unnamed")
_MEMBER_VIEW_KEY_SET = frozenset(_MEMBER_VIEW_KEYS)


def store_views_in(app: Flask, source: StoredViews) -> None:
    """Have the case read take its members from ``source`` (one per app).

    The feature guarantees that every transaction that changes a case's members or
    needs writes the view at the version it leaves (or none: the read then decrypts
    the members); docs/performance.md lists the paths checked.
    """
    current = app.extensions.get(_STORED_VIEWS)
    if current is not None and current != source:
        raise RuntimeError("a second source of stored case views")
    app.extensions[_STORED_VIEWS] = source


def _stored_views() -> StoredViews | None:
    if not has_app_context():
        return None
    found: StoredViews | None = current_app.extensions.get(_STORED_VIEWS)
    return found


def _stored_members(session: Session, case: Case) -> list[dict[str, Any]] | None:
    """The members of ``case`` as the stored view of its current version holds them
    (JSON-ready, in :func:`member_view`'s key order), or None when there is no such
    view or it has another shape. Only right after ``load_case(for_read=True)``, and
    only for a case this session has not changed since."""
    loaded: dict[uuid.UUID, Sequence[Any]] | None = session.info.get(_STORED_LOADED)
    values = loaded.pop(case.id, None) if loaded else None
    source = _stored_views()
    if values is None or source is None or inspect(case).modified:
        return None
    view = source.open(session, values, case)
    if view is None:
        return None
    members = view.get("members")
    if type(members) is not list:
        return None
    ordered: list[dict[str, Any]] = []
    for member in members:
        if type(member) is not dict or member.keys() != _MEMBER_VIEW_KEY_SET:
            return None
        ordered.append({name: member[name] for name in _MEMBER_VIEW_KEYS})
    return ordered


def returned_fields(view: Mapping[str, Any]) -> list[str]:
    """The names of the fields a case view carries with a value (for the access log)."""
    names = {name for name in CASE_FIELDS if view.get(name) not in (None, [])}
    for member in view.get("members", ()):
        names.update(f"members.{name}" for name, value in member.items() if value not in (None, []))
    return sorted(names)


ViewContributor = Callable[[Session, Principal, Case, dict[str, Any]], list[str]]
_VIEW_CONTRIBUTORS = "casework.case_view_contributors"


def contribute_to_case_view(app: Flask, contributor: ViewContributor) -> None:
    """Register a feature's block of the case read (the workflow's states and transitions):
    ``contributor`` adds it to the view and returns the field names it carries."""
    registered: list[ViewContributor] = app.extensions.setdefault(_VIEW_CONTRIBUTORS, [])
    if contributor not in registered:
        registered.append(contributor)


def read_case(
    session: Session, case: Case, principal: Principal | None = None, *, json_ready: bool = False
) -> dict[str, Any]:
    """The decrypted case, recorded as one ``case.read`` with the names of the fields returned.

    Given the caller, every registered feature adds its block for them (the
    whole ``CaseOut`` of ``GET /cases/{reference}``); without, the case alone.
    ``json_ready``: the caller sends the view through :func:`~casework.api.jsonable`, so
    the members may come JSON-ready from the stored view of the case's version, loaded
    by ``load_case(for_read=True)`` (else they are decrypted, as always).
    """
    members = _stored_members(session, case) if json_ready else None
    view = case_view(case) if members is None else _case_fields(case, members)
    names = returned_fields(view)
    if principal is not None:
        for contributor in current_app.extensions.get(_VIEW_CONTRIBUTORS, []):
            names.extend(contributor(session, principal, case, view))
    audit.record(
        AuditAction.CASE_READ, target=case.reference, fields=sorted(names), session=session
    )
    return view


# --- intake --------------------------------------------------------------------------------


def _free_references(session: Session, count: int) -> list[str]:
    """``count`` new references that no stored case uses.

    References are random (50 bits): a clash is about one in a billion at a
    million cases; a drawn one that exists is simply drawn again.
    """
    chosen: set[str] = set()
    while len(chosen) < count:
        draw = {new_reference() for _ in range(count - len(chosen))} - chosen
        taken = set(session.scalars(_taken_statement(), {"draw": list(draw)}))
        chosen |= draw - taken
    return list(chosen)


def _draw_references(count: int) -> list[str]:
    """``count`` distinct random references, not yet checked against the store."""
    drawn: set[str] = set()
    while len(drawn) < count:
        drawn.add(new_reference())
    return list(drawn)


@functools.cache
def _taken_statement() -> Any:
    """The drawn references (``draw``) that stored cases use; built once."""
    return select(Case.reference).where(Case.reference.in_(bindparam("draw", expanding=True)))


@functools.cache
def _office_statement() -> Any:
    """Whether the office is active and how many drawn references are taken: one statement
    where two would do, built once (the office and references are bound)."""
    taken = (
        select(func.count())
        .select_from(Case)
        .where(Case.reference.in_(bindparam("draw", expanding=True)))
        .scalar_subquery()
    )
    return select(Office.is_active, taken.label("taken")).where(Office.code == bindparam("office"))


def _references_for(session: Session, office: str, count: int) -> list[str]:
    """``count`` free references for new cases of ``office``, which must exist and be
    active (ValidationFailed otherwise): the office and a first draw are checked with
    one statement; a draw that clashes (one in a billion) is drawn again."""
    draw = _draw_references(count)
    session.flush()  # as a query would: then plain columns, without the ORM's result machinery
    found = session.connection().execute(_office_statement(), {"office": office, "draw": draw})
    row = found.first()
    if row is None or not row.is_active:
        raise ValidationFailed(errors={"json": {"office": [NO_SUCH_OFFICE]}})
    return _free_references(session, count) if row.taken else draw


@dataclass
class ReservedReferences:
    """Free references drawn for ``office`` (checked to exist and be active) with one
    statement, for a caller that registers many cases one by one in one transaction
    (a sync push): each :func:`intake` there takes one instead of checking again."""

    office: str
    free: list[str]

    def take(self, office: str, count: int) -> list[str] | None:
        """``count`` of them for a case of ``office``, or None (another office, or too few)."""
        if office != self.office or len(self.free) < count:
            return None
        taken, self.free = self.free[:count], self.free[count:]
        return taken


def reserve_references(session: Session, office: str, count: int) -> ReservedReferences:
    """``count`` free references for ``office`` (ValidationFailed unless it exists and is
    active), for :func:`intake`'s ``reserved``."""
    return ReservedReferences(office, _references_for(session, office, count))


def _assign(member: CaseMember, data: Mapping[str, Any], fields: Iterable[str]) -> None:
    assign_sealed(member, {name: data.get(name) for name in fields if name != "relationship"})


@dataclass
class _NewCase:
    """A case built for intake (not yet added), with what the request knows in plain."""

    case: Case
    #: the members' plain values as stored (intake ``mother`` positions become ids)
    members: list[dict[str, Any]]
    #: each member as duplicate detection reads it, and the keys it is stored under
    people: list[duplicates.Person]


def _build_case(office: str, reference: str, household: Mapping[str, Any]) -> _NewCase:
    """A new case and its members (not yet added); intake ``mother`` indexes become ids."""
    now = utcnow()
    case = Case(
        reference=reference,
        office_code=office,
        stage=Stage.INTAKE.value,
        resettlement_stage=ResettlementStage.NOT_CONSIDERED.value,
        version=1,
        created_at=now,
        updated_at=now,
        erased_at=None,
    )
    case.specific_needs = list(plain(household.get("specific_needs") or []))
    members_data = [plain(m) for m in household["members"]]
    ids = [uuid.uuid4() for _ in members_data]
    for position, data in enumerate(members_data):
        mother = data.get("mother")
        data["mother"] = ids[mother] if isinstance(mother, int) else mother
        member = CaseMember(
            id=ids[position], case_id=case.id, position=position, relationship=data["relationship"]
        )
        _assign(member, data, MEMBER_FIELDS)
        case.members.append(member)
    people = [duplicates.Person.of(data) for data in members_data]
    return _NewCase(case, members_data, people)


def _intake_office(principal: Principal, requested: str | None) -> str:
    """The office a new case goes to: the one asked for, else the caller's; it must be in
    the caller's scope (whether it exists and is active is checked with the references)."""
    office = requested or principal.office
    if office is None:
        deny(principal, NO_OFFICE)
    assert office is not None
    if not in_scope(principal, office):
        deny(principal, OTHER_OFFICE)
    return office


def written_fields(household: Mapping[str, Any]) -> list[str]:
    """Names of the fields an intake body gave a value (for the access log)."""
    names = {"office", "stage", "resettlement_stage"}
    if household.get("specific_needs"):
        names.add("specific_needs")
    for member in household["members"]:
        names.update(f"members.{k}" for k, v in member.items() if v not in (None, []))
    return sorted(names)


@dataclass
class IntakeResult:
    case: Case
    possible_duplicates: list[dict[str, Any]] = field(default_factory=list)
    #: the names :func:`written_fields` gives the body (the ``case.create`` entry's fields)
    fields: list[str] = field(default_factory=list)
    #: the members' sealed values as written, by member id (:data:`Stored`): the values
    #: the body gave, which decrypting the new rows would give back (codecs round-trip)
    stored: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)


@dataclass
class PlannedIntake:
    """A household checked and built as a case (:func:`plan_intake`), nothing written yet:
    :func:`write_intakes` writes it, with others."""

    new: _NewCase
    result: IntakeResult


def plan_intake(
    session: Session,
    principal: Principal,
    household: Mapping[str, Any],
    *,
    reserved: ReservedReferences | None = None,
) -> PlannedIntake:
    """Check a household (``IntakeIn`` data) and build its case, writing nothing: every
    refusal of an intake (Forbidden, ValidationFailed for an office that does not exist
    or is inactive) is raised here, so a caller registering many cases in one
    transaction (a sync push) needs no savepoint to drop a refused one.

    ``reserved``: references drawn for the office in this transaction
    (:func:`reserve_references`), one of which the case takes instead of checking the
    office and drawing again. The case, its members and their ids, its reference, the
    ``case.create`` entry's fields and the members' values as stored are known here.
    """
    office = _intake_office(principal, household.get("office"))
    references = reserved.take(office, 1) if reserved is not None else None
    if references is None:
        references = _references_for(session, office, 1)
    new = _build_case(office, references[0], household)
    stored = {
        member.id: {name: data.get(name) for name in _SEALED_MEMBER_FIELDS}
        for member, data in zip(new.case.members, new.members, strict=True)
    }
    return PlannedIntake(new, IntakeResult(new.case, [], written_fields(household), stored))


def write_intakes(
    session: Session, principal: Principal, planned: Sequence[PlannedIntake]
) -> list[IntakeResult]:
    """Write planned cases (:func:`plan_intake`) with one INSERT per table (cases, keys,
    members, blind-index entries: :func:`_write_cases`), then look each up for duplicates
    in its office: one statement for all (:func:`~casework.cases.duplicates.find_duplicates_each`).

    Refuses nothing: what can fail here is the database (an error the caller lets fail
    the whole transaction). Records nothing and queues nothing: the caller writes the
    ``case.create`` entries (the results' ``fields``) and queues the cross-office check
    (:func:`~casework.cases.duplicates.queue_checks`) for all of them at once. The
    lookups run once every case is written: cases written together find each other
    (never themselves), whatever their order.
    """
    known = indexes.Values(keyring_of(session))  # the HMACs stored, reused by the lookups
    entries = _write_cases(session, [plan.new for plan in planned], known)
    written = [(plan.new.case, plan.new.people) for plan in planned]
    stored = [
        (e["member_id"], e["case_id"], e["name"], e["root_version"], e["value"]) for e in entries
    ]
    found = duplicates.find_duplicates_each(session, principal, written, known, stored)
    for plan, possible in zip(planned, found, strict=True):
        # In place: a caller may hold the list already (a sync push's result).
        plan.result.possible_duplicates.extend(possible)
    return [plan.result for plan in planned]


def intake(session: Session, principal: Principal, household: Mapping[str, Any]) -> IntakeResult:
    """Register a household (``IntakeIn`` data) and look for duplicates across offices.

    Duplicates in the caller's office are returned with their score; the case
    is queued for the comparison with other offices, whose alerts the caller
    is not told about (:mod:`casework.cases.duplicates`). What the body says is
    in hand: the stored keys and the duplicate lookup use it, never decrypting
    what was just written, and each name is parsed and each HMAC computed once.
    """
    plan = plan_intake(session, principal, household)
    known = indexes.Values(keyring_of(session))  # the HMACs stored, reused by the lookup
    _write_cases(session, [plan.new], known)
    new, result = plan.new, plan.result
    audit.record(
        AuditAction.CASE_CREATE, target=new.case.reference, fields=result.fields, session=session
    )
    result.possible_duplicates = duplicates.find_duplicates(
        session, principal, new.case, new.members, known, new.people
    )
    return result


def register(
    session: Session, principal: Principal, household: Mapping[str, Any]
) -> dict[str, Any]:
    """:func:`intake`, answered as the new case with its ``possible_duplicates``."""
    result = intake(session, principal, household)
    return {**case_view(result.case), "possible_duplicates": result.possible_duplicates}


def _add_cases(
    session: Session, office: str, households: Sequence[Mapping[str, Any]]
) -> list[_NewCase]:
    """Build, key and write the cases of ``households`` for ``office`` (ValidationFailed
    unless it exists and is active): :func:`_write_cases`."""
    references = _references_for(session, office, len(households))
    built = [_build_case(office, ref, h) for ref, h in zip(references, households, strict=True)]
    _write_cases(session, built, indexes.Values(keyring_of(session)))
    return built


def _write_cases(
    session: Session, built: Sequence[_NewCase], values: indexes.Values
) -> list[dict[str, Any]]:
    """Key and write built cases without the unit of work: one INSERT each for their
    rows, keys, members and blind-index entries, computed from the plain values (nothing
    is decrypted).

    The rows are those a flush of the objects writes, byte for byte in format (each value
    sealed with its column's and row's associated data, a row seal at counter 1:
    :func:`~casework.security.columns.seal_new_row`), at a fraction of the unit of work's
    cost. The objects then join the session as persistent, as written: a later change
    (a sync update naming a new case) is flushed as an UPDATE, reads open nothing. Each
    case is marked changed so that the flush listeners that follow this unit of work's
    writes (the sync feed publishes the cases it wrote) see it like a flushed one; that
    flush writes nothing for it. Returns the blind-index rows written (every entry of
    the cases: new, they have no other).
    """
    session.flush()  # what the unit of work holds goes first, as with one flush for all
    keys = provision_new_case_keys(session, [new.case.id for new in built])
    cache = data_key_cache(session)
    root = values.keyring.blind_index_root().version
    case_rows: list[dict[str, Any]] = []
    member_rows: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    for new in built:
        case = new.case
        key = cache.get(case.id)
        state = case.__dict__
        row = {name: state[name] for name in _CASE_COLUMNS}
        case_rows.append(row | seal_new_row(case, key))
        for member, person in zip(case.members, new.people, strict=True):
            state = member.__dict__
            row = {name: state[name] for name in _MEMBER_COLUMNS}
            member_rows.append(row | seal_new_row(member, key))
            entries.extend(_entry_rows(values, root, member.id, case.id, person))
    session.execute(_insert_rows(Case), case_rows)
    session.execute(_insert_rows(CaseKey), keys)
    session.execute(_insert_rows(CaseMember), member_rows)
    if entries:  # after the members they name
        session.execute(_insert_entries(), entries)
    _persist_written(session, [new.case for new in built])
    return entries


#: The plain columns of a new case and member (the sealed ones and the seal come from
#: :func:`~casework.security.columns.seal_new_row`); :func:`_build_case` sets each.
_CASE_COLUMNS = (
    "id",
    "reference",
    "office_code",
    "stage",
    "resettlement_stage",
    "version",
    "created_at",
    "updated_at",
    "erased_at",
)
_MEMBER_COLUMNS = ("id", "case_id", "position", "relationship")


@functools.cache
def _insert_rows(model: type[Any]) -> Any:
    """A table's INSERT for rows written without the unit of work, built once."""
    return insert(_table(model))


def _persist_written(session: Session, written: Sequence[Case]) -> None:
    """Make the cases just inserted (and their members) persistent in ``session``, as
    loaded: every attribute held, nothing pending, the cases marked changed."""
    for case in written:
        for member in case.members:
            make_transient_to_detached(member)
        make_transient_to_detached(case)
    session.add_all(written)
    for case in written:
        flag_dirty(case)


@functools.cache
def _insert_entries() -> Any:
    """The blind-index rows' INSERT, built once (a statement built per call computes its
    cache key again each time)."""
    return insert(_table(BlindIndexEntry))


def _entry_rows(
    values: indexes.Values,
    root: int,
    member_id: uuid.UUID,
    case_id: uuid.UUID,
    person: duplicates.Person,
) -> list[dict[str, Any]]:
    """The blind-index rows of a new member under root ``root``: its keys at its own year."""
    found = {
        (probe.index, value)
        for probe in duplicates.probes_of(person, year_slack=0)
        if (value := values.of(probe, root)) is not None
    }
    return [
        {"member_id": member_id, "case_id": case_id, "name": n, "root_version": root, "value": v}
        for n, v in sorted(found)
    ]


def bulk_intake(
    session: Session,
    office: str,
    households: Sequence[Mapping[str, Any]],
    *,
    audit_each: bool = True,
) -> list[Case]:
    """Register many households for ``office`` at once, without duplicate checks.

    For seeding and imports: one INSERT per table for the batch. Each case gets its own
    ``case.create`` entry (actor: the system outside a request), unless
    ``audit_each`` is False: synthetic benchmark data is then recorded as one
    entry per batch, without target. ``households`` are ``IntakeIn``-shaped
    data that the caller has validated. Raises ValidationFailed when the
    office does not exist or is inactive.
    """
    cases = [new.case for new in _add_cases(session, office, households)]
    if not audit_each:
        names = {name for household in households for name in written_fields(household)}
        audit.record(AuditAction.CASE_CREATE, fields=sorted(names), session=session)
        return cases
    for case, household in zip(cases, households, strict=True):
        audit.record(
            AuditAction.CASE_CREATE,
            target=case.reference,
            fields=written_fields(household),
            session=session,
        )
    return cases


def bulk_register(
    session: Session,
    office: str,
    households: Sequence[Mapping[str, Any]],
    *,
    audit_each: bool = True,
) -> list[str]:
    """:func:`bulk_intake` for large imports and seeding; returns the new references.

    The same rows as the ORM path, written without a unit of work: a data key
    per case wrapped under the active KEK, every field encrypted by its model
    attribute (:meth:`~casework.security.columns.EncryptedField.ciphertext`:
    same encoding, padding and associated data), blind indexes under the
    current root, then one multi-row INSERT per table. The access log gets one
    ``case.create`` entry per case (:func:`~casework.audit.service.record_many`),
    or, with ``audit_each`` False, one entry for the batch. No duplicate check,
    no validation: ``households`` are ``IntakeIn`` data the caller validated.
    Raises ValidationFailed when the office does not exist or is inactive.
    """
    references = _references_for(session, office, len(households))
    keyring = keyring_of(session)
    kek = keyring.active_kek()
    root = keyring.blind_index_root().version
    values = indexes.Values(keyring)  # for this call only: it holds keys of personal data
    now = utcnow()
    rows: dict[str, list[dict[str, Any]]] = {"cases": [], "keys": [], "members": [], "index": []}
    for reference, household in zip(references, households, strict=True):
        _bulk_rows(rows, keyring, kek.kek_id, root, values, office, reference, household, now)
    session.execute(insert(_table(Case)), rows["cases"])
    session.execute(insert(_table(CaseKey)), rows["keys"])
    session.execute(insert(_table(CaseMember)), rows["members"])
    if rows["index"]:
        session.execute(insert(_table(BlindIndexEntry)), rows["index"])
    names = sorted({name for household in households for name in written_fields(household)})
    targets: list[str | None] = list(references) if audit_each else [None]
    record_many(AuditAction.CASE_CREATE, targets, fields=names, session=session)
    return references


def _bulk_rows(
    rows: dict[str, list[dict[str, Any]]],
    keyring: Keyring,
    kek_id: str,
    root: int,
    values: indexes.Values,
    office: str,
    reference: str,
    household: Mapping[str, Any],
    now: Any,
) -> None:
    """Append the rows of one new case (case, key, members, index entries) to ``rows``."""
    case_id = uuid.uuid4()
    material = new_data_key()
    wrapped = wrap_data_key(keyring, material, case_id)
    key = DataKey(material)
    needs = list(plain(household.get("specific_needs") or []))
    case_ids = RowIds(case_id, case_id)
    rows["keys"].append(
        {"case_id": case_id, "kek_id": kek_id, "wrapped_key": wrapped.blob, "created_at": now}
    )
    rows["cases"].append(
        {
            "id": case_id,
            "reference": reference,
            "office_code": office,
            "stage": Stage.INTAKE.value,
            "resettlement_stage": ResettlementStage.NOT_CONSIDERED.value,
            "specific_needs": Case.specific_needs.ciphertext(key, case_ids, needs),
            "version": 1,
            "created_at": now,
            "updated_at": now,
            "erased_at": None,
        }
    )
    rows["cases"][-1]["row_seal"] = row_seal_for(Case, key, case_ids, rows["cases"][-1])
    members = [plain(m) for m in household["members"]]
    ids = [uuid.uuid4() for _ in members]
    for position, data in enumerate(members):
        mother = data.get("mother")
        data["mother"] = ids[mother] if isinstance(mother, int) else mother
        row: dict[str, Any] = {
            "id": ids[position],
            "case_id": case_id,
            "position": position,
            "relationship": data["relationship"],
        }
        row_ids = RowIds(case_id, ids[position])
        for name in _SEALED_MEMBER_FIELDS:
            field_ = getattr(CaseMember, name)
            row[field_.name_in_table] = field_.ciphertext(key, row_ids, data.get(name))
        row["row_seal"] = row_seal_for(CaseMember, key, row_ids, row)
        rows["members"].append(row)
        person = duplicates.Person.of(data)
        rows["index"].extend(_entry_rows(values, root, ids[position], case_id, person))


def _table(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


_SEALED_MEMBER_FIELDS = tuple(name for name in MEMBER_FIELDS if name != "relationship")


# --- change --------------------------------------------------------------------------------

Stored = dict[uuid.UUID, dict[str, Any]]
"""Members' sealed values by member id, decrypted once (:func:`stored_values`)."""


def stored_values(case: Case) -> Stored:
    """Every member's sealed values, each row's seal checked and its fields opened once.

    A caller that needs the case's view, its household rules and the view after
    a change (a sync push) decrypts the household once and passes this on;
    :func:`apply_update` keeps it current with the values it writes.
    """
    return {member.id: read_sealed(member, _SEALED_MEMBER_FIELDS) for member in case.members}


def case_view_with(case: Case, members: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`case_view` with the members' views given (read from a stored view)."""
    return _case_fields(case, members)


#: Sealed member fields whose JSON in a view is not their value: read back with these
#: (every other one is a JSON value already: text, int, list, dict or null).
_FROM_JSON: dict[str, Callable[[Any], Any]] = {
    "date_of_birth": datetime.date.fromisoformat,
    "mother": uuid.UUID,
}
#: A field opened to check a member row's seal when its values come from a view.
_SEAL_CHECK_FIELD = ("sex",)


def stored_from_view(case: Case, members: Any) -> Stored | None:
    """:func:`stored_values` read back from ``members``, the JSON members of a stored
    view of ``case`` at its current version (:class:`StoredViews`, whose row the caller
    opened and checked): one decryption for the household instead of one per value.

    Every member row's seal is still checked (one value opened each), as
    :func:`stored_values` checks it: a row altered in the database fails here
    (RowIntegrityError) as it does there. None, for the caller to decrypt the rows,
    when the view's members are not exactly the case's (by id) or have another shape.

    A view shows an absent ``other_names`` or ``documents`` as ``[]``: they are read
    back as ``[]``, which a caller may hold only where the two mean the same (a merge
    against the view never lets a change equal to the view's value through).
    """
    if type(members) is not list or len(members) != len(case.members):
        return None
    by_id = {member.id: member for member in case.members}
    stored: Stored = {}
    try:
        for view in members:
            if type(view) is not dict or view.keys() != _MEMBER_VIEW_KEY_SET:
                return None
            member_id = uuid.UUID(view["id"])
            if member_id not in by_id or member_id in stored:
                return None
            values = {name: view[name] for name in _SEALED_MEMBER_FIELDS}
            for name, read in _FROM_JSON.items():
                if values[name] is not None:
                    values[name] = read(values[name])
            stored[member_id] = values
    except (TypeError, ValueError, AttributeError):
        return None
    for member in case.members:
        read_sealed(member, _SEAL_CHECK_FIELD)
    return stored


@dataclass
class _Plan:
    """A PATCH's member operations resolved against the stored household."""

    merged: list[dict[str, Any]]
    # merged position -> where the member came from in the request, for error keys
    origin: list[tuple[str, Any]]
    changes: dict[uuid.UUID, dict[str, Any]]
    added: list[dict[str, Any]]
    removed: list[CaseMember]


@dataclass
class CaseUpdate:
    """A PATCH checked against the case (:func:`plan_update`): what :func:`apply_update` writes."""

    needs: list[str] | None = None
    plan: _Plan | None = None


_SEALED_RULE_FIELDS = tuple(name for name in RULE_FIELDS if name != "relationship")


def _rule_view(member: CaseMember, stored: Stored | None = None) -> dict[str, Any]:
    values = stored.get(member.id) if stored is not None else None
    if values is None:
        view = {name: getattr(member, name) for name in RULE_FIELDS}
    else:
        view = {name: values[name] for name in _SEALED_RULE_FIELDS}
        view["relationship"] = member.relationship
    view["id"] = member.id
    return view


def _plan(case: Case, operations: Mapping[str, Any], stored: Stored | None = None) -> _Plan:
    stored_members = {member.id: member for member in case.members}
    changes = {c["id"]: plain(c) for c in operations.get("change", [])}
    removed_ids = list(operations.get("remove", []))
    errors: dict[str, Any] = {}
    for position, member_id in enumerate(changes):
        if member_id not in stored_members:
            errors.setdefault("change", {})[position] = {"id": [NO_SUCH_MEMBER]}
    for position, member_id in enumerate(removed_ids):
        if member_id not in stored_members:
            errors.setdefault("remove", {})[position] = [NO_SUCH_MEMBER]
    if errors:
        raise ValidationFailed(errors={"json": {"members": errors}})
    change_positions = {member_id: i for i, member_id in enumerate(changes)}
    merged: list[dict[str, Any]] = []
    origin: list[tuple[str, Any]] = []
    for member in case.members:
        if member.id in removed_ids:
            continue
        view = _rule_view(member, stored)
        if member.id in changes:
            view.update(changes[member.id])
            origin.append(("change", change_positions[member.id]))
        else:
            origin.append(("existing", str(member.id)))
        merged.append(view)
    added = [plain(m) for m in operations.get("add", [])]
    for position, data in enumerate(added):
        merged.append({**data, "id": None})
        origin.append(("add", position))
    removed = [stored_members[member_id] for member_id in removed_ids]
    return _Plan(merged, origin, changes, added, removed)


def _check_household(plan: _Plan) -> None:
    """Apply the intake rules to the household as the PATCH would leave it.

    A member nobody touched who has since turned 18 keeps their recorded
    civil status (it stays true of their childhood), so the adult-only rule
    is enforced only on members this request adds or changes.
    """
    found = rules.validate_household(plan.merged, today=rules.utc_today())
    errors: dict[str, Any] = {}
    for key, problems in found.items():
        if key == rules.SCHEMA:
            errors[rules.SCHEMA] = problems
            continue
        where, position = plan.origin[int(key)]
        if where == "existing":
            problems = _without_aged_out(problems)
            if not problems:
                continue
        errors.setdefault(where, {})[position] = problems
    if errors:
        raise ValidationFailed(errors={"json": {"members": errors}})


def _without_aged_out(problems: dict[str, list[str]]) -> dict[str, list[str]]:
    kept = {
        name: [m for m in messages if m != rules.ADULT_FIELD] for name, messages in problems.items()
    }
    return {name: messages for name, messages in kept.items() if messages}


def _apply_changes(
    session: Session, keyring: Keyring, case: Case, plan: _Plan, stored: Stored | None = None
) -> set[str]:
    changed: set[str] = set()
    by_id = {member.id: member for member in case.members}
    for member_id, change in plan.changes.items():
        member = by_id[member_id]
        values = stored.get(member_id) if stored is not None else None
        names = [
            name
            for name in change
            if name != "id"
            and (values[name] if values is not None and name in values else getattr(member, name))
            != change[name]
        ]
        for name in names:
            setattr(member, name, change[name])
            if values is not None and name in values:
                values[name] = getattr(member, name)  # as stored: decoded, not decrypted
        changed.update(f"members.{name}" for name in names)
        if INDEXED_FIELDS.intersection(names):
            indexes.write_entries(session, keyring, member)
    return changed


def _apply_additions(session: Session, keyring: Keyring, case: Case, plan: _Plan) -> set[str]:
    changed: set[str] = set()
    position = max((m.position for m in case.members), default=-1)
    for data in plan.added:
        position += 1
        member = CaseMember(case_id=case.id, position=position, relationship=data["relationship"])
        _assign(member, data, MEMBER_FIELDS)
        case.members.append(member)
        indexes.add_entries(session, keyring, member, indexes.member_probes(data))
        changed.add("members.add")
        changed.update(f"members.{k}" for k, v in data.items() if v not in (None, []))
    return changed


def _apply_removals(session: Session, case: Case, plan: _Plan) -> set[str]:
    for member in plan.removed:
        session.execute(delete(BlindIndexEntry).where(BlindIndexEntry.member_id == member.id))
        case.members.remove(member)  # delete-orphan: the row goes at flush
    return {"members.remove"} if plan.removed else set()


def plan_update(case: Case, changes: Mapping[str, Any], stored: Stored | None = None) -> CaseUpdate:
    """Check a PATCH (``CaseUpdateIn`` data) against ``case``, writing nothing.

    The household as it would be afterwards must pass every intake rule
    (ValidationFailed otherwise). ``stored``: :func:`stored_values` of the case,
    when the caller decrypted them already.
    """
    update = CaseUpdate()
    if "specific_needs" in changes:
        needs = list(plain(changes["specific_needs"]))
        if needs != (case.specific_needs or []):
            update.needs = needs
    operations = changes.get("members")
    if operations:
        update.plan = _plan(case, operations, stored)
        _check_household(update.plan)
    return update


def apply_update(
    session: Session, case: Case, update: CaseUpdate, stored: Stored | None = None
) -> set[str]:
    """Write a checked PATCH to ``case``; return the field names changed. A change that
    changes nothing leaves the version as it is.

    Neither records nor flushes: :func:`update_case` does both, and a sync push
    records and flushes a whole request's writes together. ``stored`` is kept
    equal to the members' values as written (added members are not in it).
    """
    changed: set[str] = set()
    if update.needs is not None:
        case.specific_needs = update.needs
        changed.add("specific_needs")
    plan = update.plan
    if plan is not None:
        keyring = keyring_of(session)
        changed |= _apply_changes(session, keyring, case, plan, stored)
        changed |= _apply_additions(session, keyring, case, plan)
        changed |= _apply_removals(session, case, plan)
    if changed:
        case.version += 1
        case.updated_at = utcnow()
    return changed


def update_case(session: Session, case: Case, changes: Mapping[str, Any]) -> list[str]:
    """Apply a PATCH (``CaseUpdateIn`` data) to ``case``; return the field names changed.

    The household as it would be afterwards must pass every intake rule
    (ValidationFailed otherwise, and nothing is written). A change that
    changes nothing leaves the version as it is.
    """
    changed = apply_update(session, case, plan_update(case, changes))
    if changed:
        audit.record(
            AuditAction.CASE_UPDATE, target=case.reference, fields=sorted(changed), session=session
        )
        session.flush()
    return sorted(changed)


def change_case(session: Session, case: Case, changes: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`update_case`, answered as the whole case (recorded as a read as well)."""
    update_case(session, case, changes)
    return read_case(session, case)


# --- erasure -------------------------------------------------------------------------------

ERASED_FIELDS = ("specific_needs", *(f"members.{name}" for name in MEMBER_FIELDS))


def erase_case(session: Session, case: Case) -> None:
    """Crypto-shred ``case``: destroy its data key, blind indexes, alerts and ciphertext.

    In one transaction: the data key row is deleted (every copy of every
    ciphertext, backups included, becomes noise), the blind-index entries
    (keyed hashes that would still link the person to other records) and the
    duplicate alerts naming the case are deleted, each ciphertext column is
    overwritten with NULL, and the member rows are deleted. A tombstone stays:
    reference, office, stages, version and the erasure time, so the access
    log's entries about the case still name something and reads answer 410.
    The hooks other features register (:mod:`casework.cases.erasure`) destroy
    their own rows about the case in the same transaction. The reasons of the
    case's erasure requests are overwritten; those still pending are cancelled.

    This is the one erasure path (an approved request, retention): it leaves a
    shred mark, so ``casework keys shred`` later destroys the KEK under which
    copies of the database still hold the case's key; on PostgreSQL the
    affected tables are vacuumed once the erasure commits.
    """
    shred(session, case.id)
    erasure.run_hooks(session, case)
    session.execute(delete(BlindIndexEntry).where(BlindIndexEntry.case_id == case.id))
    session.execute(delete(DuplicateCheck).where(DuplicateCheck.case_id == case.id))
    session.execute(
        delete(DuplicateAlert).where(
            or_(DuplicateAlert.case_id == case.id, DuplicateAlert.other_case_id == case.id)
        )
    )
    _close_erasure_requests(session, case)
    for member in case.members:
        erase_ciphertext(member)
    erase_ciphertext(case)
    session.flush()  # the overwrite reaches the database before the rows go
    case.members.clear()
    case.erased_at = utcnow()
    case.updated_at = case.erased_at
    case.version += 1
    audit.record(
        AuditAction.CASE_SHRED, target=case.reference, fields=ERASED_FIELDS, session=session
    )
    session.flush()
    _checkpoint_after_commit(session)


def _close_erasure_requests(session: Session, case: Case) -> None:
    requests = session.scalars(select(ErasureRequest).where(ErasureRequest.case_id == case.id))
    for request in requests:
        erase_ciphertext(request)
        if request.status == ErasureStatus.PENDING.value:
            request.status = ErasureStatus.CANCELLED.value
            request.version += 1


def _checkpoint_after_commit(session: Session) -> None:
    """On SQLite, fold the WAL into the database file and truncate it once the erasure commits.

    The WAL keeps earlier images of changed pages, the deleted data-key row
    among them, until a checkpoint; ``secure_delete`` zeroes deleted content
    only in the pages the checkpoint writes. Without this step a copy of the
    WAL taken with the keyring could still unwrap the key. PostgreSQL keeps
    dead row versions until VACUUM and in archived WAL: see docs/encryption.md.
    """
    bind = session.get_bind()
    engine = bind.engine
    if bind.dialect.name == "postgresql":
        _vacuum_after_commit(session, engine)
        return
    if bind.dialect.name != "sqlite":
        return

    @event.listens_for(session, "after_commit", once=True)
    def _checkpoint(_session: Session) -> None:
        if not checkpoint_wal(engine):
            log.warning("erasure committed; WAL checkpoint deferred", extra={"event": "erasure"})


ERASURE_TABLES = (
    "case_keys",
    "cases",
    "case_members",
    "case_blind_indexes",
    "duplicate_alerts",
    "erasure_requests",
)
"""Tables an erasure rewrites in every deployment; features' hooks add theirs (vacuum_tables)."""


def vacuum_tables() -> list[str]:
    """The tables to VACUUM after an erasure: the case tables, and every table with
    sealed columns (the rows the erasure hooks overwrite or delete)."""
    sealed = {
        table.name
        for table in Base.metadata.tables.values()
        if any(str(column.comment or "").startswith("encrypted ") for column in table.columns)
    }
    return sorted(set(ERASURE_TABLES) | sealed)


def _vacuum_after_commit(session: Session, engine: Engine) -> None:
    """On PostgreSQL, VACUUM the erasure's tables once it commits, in a background thread.

    The erasure leaves dead row versions (the wrapped key, the ciphertext)
    until a VACUUM; this removes them from the heap at once rather than when
    autovacuum gets round to it. Rows still visible to an older open snapshot
    stay until it ends; WAL, replicas and backups keep their copies until the
    shred step (docs/encryption.md).
    """

    @event.listens_for(session, "after_commit", once=True)
    def _vacuum(_session: Session) -> None:
        threading.Thread(target=vacuum, args=(engine,), daemon=True).start()


def vacuum(engine: Engine) -> None:
    """VACUUM the erasure's tables (PostgreSQL, autocommit); failures are logged, not raised."""
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            tables = ", ".join(vacuum_tables())
            connection.exec_driver_sql(f"VACUUM {tables}")
    except Exception:
        log.warning("erasure committed; VACUUM failed", extra={"event": "erasure"})


def checkpoint_wal(engine: Engine, wait_ms: int = 200) -> bool:
    """Run ``PRAGMA wal_checkpoint(TRUNCATE)``, waiting at most ``wait_ms``; True if done.

    Other connections may be reading or writing; the checkpoint then gives up
    quickly (the next successful one completes it) rather than hold up a request.
    """
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        (configured,) = cursor.execute("PRAGMA busy_timeout").fetchone()
        cursor.execute(f"PRAGMA busy_timeout={int(wait_ms)}")
        try:
            (busy, _frames, _done) = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            cursor.execute(f"PRAGMA busy_timeout={int(configured)}")
            cursor.close()
    finally:
        raw.close()
    return not busy


def reindex_all(session: Session, keyring: Keyring, **batching: Any) -> int:
    """Recompute every blind-index entry under ``keyring``'s current root and record
    ``keys.reindex``; returns the number of entries written. ``batching`` (``batch_size``,
    and ``on_batch``: a commit, from the command) is
    :func:`casework.cases.indexes.recompute_all`'s.
    """
    written = indexes.recompute_all(session, keyring, **batching)
    audit.record(
        AuditAction.KEYS_REINDEX,
        fields=sorted(indexes.BITS),
        session=session,
    )
    return written
