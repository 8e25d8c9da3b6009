"""Push: offline mutations applied exactly once, in device order, merged field by field.

A request's mutations run in one transaction, without savepoints: every mutation
is checked before its first write (a create's body, permission, office and client
references; an update merged and checked against the household rules), so one
that is refused has written nothing. The creates accepted are written together,
with one INSERT per table (cases, keys, members, blind-index entries), before the
next update (which may name one of them by its client reference) and at the end; the updates'
writes are flushed together. A failure that can only happen while writing (the
database's) is never stored as a rejection: it fails the whole request (500),
which rolls back everything. The device row is locked first, so
two requests carrying the same mutation queue up and the second finds the
first's stored result (``duplicate``). Everything the mutations need is read up
front in a few statements (:class:`_Batch`): the stored results of their ids,
the cases they name with their members and wrapped keys (locked), this device's
client references and earlier versions of those cases, and the sealed views
they merge against. The results are kept forever, sealed under the case's key,
and written together at the end of the request, in its transaction: a result
commits with its mutation's effects or not at all. The mutation itself is kept
only as an HMAC of its canonical JSON, to tell a resend from a different body.

Three-way merge against the sealed view at ``base_version``: a field is a
top-level field (``specific_needs``, merged as a set of additions and removals),
a member's field (``members.<id>.<field>``) or a whole member (removal). What the
server did not change since the base takes the device's value; what both
changed to different values keeps the server's value, and the device's proposal
is stored as a conflict for a person to resolve.
"""

from __future__ import annotations

import functools
import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from marshmallow import ValidationError
from sqlalchemy import Table, and_, insert, inspect, or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from casework.audit import AuditAction, Outcome
from casework.audit.service import record_many
from casework.authz.access import Principal
from casework.authz.permissions import Permission
from casework.cases import duplicates
from casework.cases import service as cases
from casework.cases.models import Case
from casework.cases.reference import InvalidReference, normalise_reference
from casework.cases.schemas import CaseUpdateIn
from casework.errors import ValidationFailed
from casework.security.app import derived_secret
from casework.security.case_keys import data_key_cache, provision_case_key
from casework.security.columns import RowIds, row_seal_for
from casework.security.envelope import WrappedKey
from casework.security.models import CaseKey
from casework.sync import feed
from casework.sync.codes import MutationOp, MutationStatus, RejectionType
from casework.sync.models import (
    RESULTS_KEY_ID,
    CaseVersion,
    ClientRef,
    Device,
    FeedEntry,
    Mutation,
    SyncConflict,
)
from casework.sync.schemas import SyncIntakeIn
from casework.timestamps import utcnow

_MISSING = object()


class Rejected(Exception):
    """A mutation that cannot be applied; becomes a ``rejected`` result."""

    def __init__(self, kind: RejectionType, fields: Mapping[str, Any] | None = None) -> None:
        super().__init__(kind.value)
        self.kind = kind
        self.fields = dict(fields or {})


@dataclass
class Applied:
    status: MutationStatus
    case: Case | None = None
    conflict: SyncConflict | None = None
    refs: dict[str, str] = field(default_factory=dict)
    errors: dict[str, Any] | None = None
    touched: list[str] = field(default_factory=list)
    #: create: the cases of the device's office that may hold the same people (best
    #: first), filled in place when the request's creates are written (:func:`_write_creates`)
    duplicates: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class _LogLine:
    reference: str | None
    fields: tuple[str, ...]
    outcome: Outcome


@dataclass
class _Known:
    """A mutation id with a result: stored by an earlier request (``row``) or decided by
    this one (``result``, not yet written)."""

    device_id: uuid.UUID
    body_mac: bytes
    row: Mutation | None = None
    result: dict[str, Any] | None = None


@dataclass
class _Batch:
    """What one push request reads up front and what it writes at the end."""

    device: Device
    next_seq: int
    known: dict[uuid.UUID, _Known] = field(default_factory=dict)
    keys: dict[uuid.UUID, WrappedKey] = field(default_factory=dict)
    by_reference: dict[str, Case] = field(default_factory=dict)
    by_id: dict[uuid.UUID, Case] = field(default_factory=dict)
    case_refs: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    member_refs: dict[uuid.UUID, dict[str, str]] = field(default_factory=dict)
    own_versions: dict[uuid.UUID, set[int]] = field(default_factory=dict)
    bases: dict[tuple[uuid.UUID, int], CaseVersion] = field(default_factory=dict)
    #: the sealed snapshot columns of each locked case at the version it was locked at
    #: (:data:`feed.STORED_VIEW_COLUMNS`), taken by the case's first update
    views: dict[uuid.UUID, tuple[Any, ...]] = field(default_factory=dict)
    was_here: dict[uuid.UUID, bool] = field(default_factory=dict)
    taken_refs: set[uuid.UUID] = field(default_factory=set)
    new_rows: list[dict[str, Any]] = field(default_factory=list)
    log: list[_LogLine] = field(default_factory=list)
    writes: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    #: each create accepted: its reference and written fields
    created: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    #: the cases those creates made, for the cross-office duplicate check's queue
    created_ids: list[uuid.UUID] = field(default_factory=list)
    #: creates checked and built, not yet written (:func:`_write_creates`)
    planned: list[cases.PlannedIntake] = field(default_factory=list)
    #: their client references' rows (the request's names were checked free up front)
    client_refs: list[dict[str, Any]] = field(default_factory=list)
    results_key: uuid.UUID | None = None
    mac_secret: bytes = b""
    #: how many creates the request holds, and the references drawn for them at the first
    creates: int = 0
    reserved: cases.ReservedReferences | None = None

    def prime(self, session: Session, *case_ids: uuid.UUID) -> None:
        """Give the session's key cache the wrapped keys read up front (unwrapping again
        costs no query)."""
        found = {case_id: self.keys[case_id] for case_id in case_ids if case_id in self.keys}
        if found:
            data_key_cache(session).prime(found)

    def remember_case(self, case: Case) -> None:
        self.by_reference[case.reference] = case
        self.by_id[case.id] = case

    def remember_locked(self, row: Any) -> Case:
        """A row of :func:`_case_query`: its case, wrapped key and snapshot kept."""
        case: Case = row[0]
        self.remember_case(case)
        if row.wrapped_key is not None:
            self.keys[case.id] = WrappedKey(row.kek_id, bytes(row.wrapped_key))
        self.views[case.id] = tuple(row)[3:]
        return case


def push(
    session: Session, principal: Principal, device_id: uuid.UUID, mutations: list[dict[str, Any]]
) -> dict[str, Any]:
    """Apply ``mutations`` (``MutationIn`` data) in order; one result each, and the
    feed's sequence number after this push."""
    device = session.scalar(
        select(Device)
        .where(Device.id == device_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert device is not None  # the request was signed by it
    batch = _prefetch(session, device, mutations)
    results = []
    blocked = False
    for mutation in mutations:
        if mutation["op"] == MutationOp.UPDATE:
            _write_creates(session, principal, batch)  # it may name one, by its client_ref
        result = _one(session, principal, batch, mutation, blocked)
        blocked = blocked or result["status"] == MutationStatus.OUT_OF_ORDER
        results.append(result)
    _write_creates(session, principal, batch)
    if device.next_seq != batch.next_seq:
        device.next_seq = batch.next_seq
    _write_results(session, batch)
    if batch.client_refs:
        session.execute(_insert_client_refs(), batch.client_refs)
    duplicates.queue_checks(session, batch.created_ids)
    _record(session, batch)
    published = feed.publish(session)
    return {
        "results": results,
        "write_checkpoint": published if published is not None else feed.last_seq(session),
    }


# --- reading up front ----------------------------------------------------------------------


def _as_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _prefetch(session: Session, device: Device, mutations: list[dict[str, Any]]) -> _Batch:
    """One statement each: the stored results of the request's ids (with their keys),
    the client references it uses, the cases it updates (locked, with members and keys),
    the device's references and versions of those cases, and the bases to merge against."""
    batch = _Batch(device=device, next_seq=device.next_seq)
    batch.mac_secret = derived_secret("sync/mutation")
    ids = [mutation["mutation_id"] for mutation in mutations]
    for row, kek_id, wrapped in session.execute(
        select(Mutation, CaseKey.kek_id, CaseKey.wrapped_key)
        .outerjoin(CaseKey, CaseKey.case_id == Mutation.key_id)
        .where(Mutation.mutation_id.in_(ids))
    ):
        batch.known[row.mutation_id] = _Known(row.device_id, bytes(row.body_mac), row=row)
        if wrapped is not None:
            batch.keys[row.key_id] = WrappedKey(kek_id, bytes(wrapped))
    fresh = [m for m in mutations if m["mutation_id"] not in batch.known]
    batch.creates = sum(1 for m in fresh if m["op"] == MutationOp.CREATE)
    references, refs = _named(fresh)
    if refs:
        columns = (ClientRef.client_ref, ClientRef.device_id, ClientRef.case_id)
        rows = session.execute(
            select(*columns, ClientRef.member_id).where(ClientRef.client_ref.in_(refs))
        )
        for ref, owner, case_id, member_id in rows:
            batch.taken_refs.add(ref)
            if owner == device.id and member_id is None:
                batch.case_refs[ref] = case_id
    if references or batch.case_refs:
        _lock_cases(session, batch, references, set(batch.case_refs.values()))
    if batch.by_id:
        _read_case_context(session, batch, fresh)
    return batch


def _named(mutations: list[dict[str, Any]]) -> tuple[set[str], set[uuid.UUID]]:
    """The canonical references the updates name, and every UUID the mutations use as a
    client reference (an update's case, a create's case and members)."""
    references: set[str] = set()
    refs: set[uuid.UUID] = set()
    for mutation in mutations:
        if mutation["op"] == MutationOp.UPDATE:
            try:
                references.add(normalise_reference(mutation.get("reference") or ""))
            except InvalidReference:
                ref = _as_uuid(mutation.get("reference"))
                if ref is not None:
                    refs.add(ref)
            continue
        changes = mutation.get("changes")
        if not isinstance(changes, dict):
            continue
        members = changes.get("members")
        candidates = [changes.get("client_ref")]
        if isinstance(members, list):
            candidates += [m.get("client_ref") for m in members if isinstance(m, dict)]
        refs.update(ref for ref in map(_as_uuid, candidates) if ref is not None)
    return references, refs


def _case_query(where: Any) -> Any:
    """The cases matching ``where``, locked in id order (concurrent pushes queue rather
    than deadlock), with their members, wrapped keys and the sealed snapshot of their
    current version (the merge view, :func:`_household`)."""
    return (
        select(Case, CaseKey.kek_id, CaseKey.wrapped_key, *feed.STORED_VIEW_COLUMNS)
        .outerjoin(CaseKey, CaseKey.case_id == Case.id)
        .outerjoin(
            CaseVersion, and_(CaseVersion.case_id == Case.id, CaseVersion.version == Case.version)
        )
        .where(where)
        .options(selectinload(Case.members))
        .order_by(Case.id)
        .with_for_update(of=Case)
        .execution_options(populate_existing=True)
    )


def _lock_cases(
    session: Session, batch: _Batch, references: set[str], case_ids: set[uuid.UUID]
) -> None:
    where = or_(Case.reference.in_(references), Case.id.in_(case_ids))
    for row in session.execute(_case_query(where)):
        batch.remember_locked(row)


def _read_case_context(session: Session, batch: _Batch, mutations: list[dict[str, Any]]) -> None:
    """The device's member references and earlier versions of the locked cases, whether
    the cases out of the office were in it, and the sealed bases the updates need."""
    device = batch.device
    ids = list(batch.by_id)
    for case_id, ref, member_id in session.execute(
        select(ClientRef.case_id, ClientRef.client_ref, ClientRef.member_id).where(
            ClientRef.case_id.in_(ids),
            ClientRef.device_id == device.id,
            ClientRef.member_id.is_not(None),
        )
    ):
        batch.member_refs.setdefault(case_id, {})[str(ref)] = str(member_id)
    # The device's earlier versions matter only to an update whose base is not the case's
    # version (:func:`_effective_base` walks up from the base: an update against the
    # current version, or one after it in this request, never reaches an earlier one).
    behind: list[tuple[Case, int]] = []
    for mutation in mutations:
        if mutation["op"] == MutationOp.UPDATE:
            case = _prefetched(batch, mutation["reference"])
            if case is not None and case.version != mutation["base_version"]:
                behind.append((case, mutation["base_version"]))
    stale = sorted({case.id for case, _base in behind})
    if stale:
        for own_case, version in session.execute(
            select(Mutation.case_id, Mutation.case_version).where(
                Mutation.case_id.in_(stale),
                Mutation.device_id == device.id,
                Mutation.case_version.is_not(None),
            )
        ):
            if own_case is not None and version is not None:
                batch.own_versions.setdefault(own_case, set()).add(version)
    away = [case.id for case in batch.by_id.values() if case.office_code != device.office_code]
    if away:
        here = set(
            session.scalars(
                select(FeedEntry.case_id).where(
                    FeedEntry.case_id.in_(away), FeedEntry.office_code == device.office_code
                )
            )
        )
        batch.was_here.update({case_id: case_id in here for case_id in away})
    pairs = set()
    for case, base_version in behind:
        base = _effective_base(batch, case, base_version)
        if base != case.version:
            pairs.add((case.id, base))
    if pairs:
        query = select(CaseVersion).where(
            tuple_(CaseVersion.case_id, CaseVersion.version).in_(sorted(pairs))
        )
        batch.bases.update({(row.case_id, row.version): row for row in session.scalars(query)})


def _prefetched(batch: _Batch, reference: str) -> Case | None:
    try:
        return batch.by_reference.get(normalise_reference(reference))
    except InvalidReference:
        ref = _as_uuid(reference)
        case_id = batch.case_refs.get(ref) if ref is not None else None
        return batch.by_id.get(case_id) if case_id is not None else None


# --- one mutation --------------------------------------------------------------------------


def _record(session: Session, batch: _Batch) -> None:
    """The ``case.create`` entry of each create kept and the ``case.update`` entry of each
    update that changed a case, then one ``sync.push`` entry per result: appended
    together, grouped by fields (and outcome), in the transaction of the results and the
    changes, so they commit or vanish with them (a rejected create wrote nothing and
    never reaches the list)."""
    made: dict[tuple[str, ...], list[str | None]] = {}
    for reference, fields in batch.created:
        made.setdefault(fields, []).append(reference)
    for fields, references in made.items():
        record_many(AuditAction.CASE_CREATE, references, fields=fields, session=session)
    writes: dict[tuple[str, ...], list[str | None]] = {}
    for reference, fields in batch.writes:
        writes.setdefault(fields, []).append(reference)
    for fields, references in writes.items():
        record_many(AuditAction.CASE_UPDATE, references, fields=fields, session=session)
    groups: dict[tuple[tuple[str, ...], Outcome], list[str | None]] = {}
    for line in batch.log:
        groups.setdefault((line.fields, line.outcome), []).append(line.reference)
    for (fields, outcome), references in groups.items():
        record_many(
            AuditAction.SYNC_PUSH, references, fields=fields, outcome=outcome, session=session
        )


def body_mac(mutation: Mapping[str, Any], secret: bytes | None = None) -> bytes:
    """HMAC of the canonical JSON of ``mutation`` (``secret``: the derived key, when the
    caller derived it once for many mutations)."""
    canonical = _CANONICAL.encode(feed.jsonable(dict(mutation)))
    key = secret if secret is not None else derived_secret("sync/mutation")
    return hmac.digest(key, canonical.encode(), "sha256")


#: ``json.dumps(..., sort_keys=True, separators=(",", ":"))``, built once (``dumps`` with
#: keywords builds an encoder per call).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def _one(
    session: Session,
    principal: Principal,
    batch: _Batch,
    mutation: dict[str, Any],
    blocked: bool,
) -> dict[str, Any]:
    mutation_id: uuid.UUID = mutation["mutation_id"]
    mac = body_mac(mutation, batch.mac_secret)
    op = mutation["op"]
    known = batch.known.get(mutation_id)
    if known is not None:
        if known.device_id != batch.device.id or known.body_mac != mac:
            batch.log.append(_LogLine(None, (f"{op}.rejected", "reused-id"), Outcome.FAILURE))
            return _answer(
                mutation_id, MutationStatus.REJECTED, errors=_errors(RejectionType.REUSED_ID)
            )
        answer = _duplicate(session, batch, mutation_id, known)
        batch.log.append(_LogLine(answer["reference"], (f"{op}.duplicate",), Outcome.SUCCESS))
        return answer
    seq = mutation["device_seq"]
    if blocked or seq > batch.next_seq:
        batch.log.append(_LogLine(None, (f"{op}.out_of_order",), Outcome.FAILURE))
        return {
            "mutation_id": mutation_id,
            "status": MutationStatus.OUT_OF_ORDER,
            "expected_seq": batch.next_seq,
        }
    if seq < batch.next_seq:
        outcome = Applied(MutationStatus.REJECTED, errors=_errors(RejectionType.REUSED_SEQ))
        return _store(session, batch, mutation, mac, outcome, consumes_seq=False)
    try:
        # No savepoint: a mutation is refused before it writes anything (see _update and
        # _create).
        if mutation["op"] == MutationOp.UPDATE:
            outcome = _update(session, principal, batch, mutation)
        else:
            outcome = _create(session, principal, batch, mutation["changes"])
    except Rejected as refused:
        outcome = Applied(MutationStatus.REJECTED, errors=_errors(refused.kind, refused.fields))
    except ValidationFailed as failed:
        outcome = Applied(
            MutationStatus.REJECTED, errors=_errors(RejectionType.INVALID, _field_errors(failed))
        )
    return _store(session, batch, mutation, mac, outcome, consumes_seq=True)


def _errors(kind: RejectionType, fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"type": kind.value, "fields": feed.jsonable(dict(fields or {}))}


def _field_errors(failed: ValidationFailed) -> dict[str, Any]:
    """The field errors of a rejected mutation, as JSON can hold them: marshmallow keys
    list items by position (``members.change[0]``), and JSON object keys are strings."""
    found = failed.extra.get("errors") or {}
    json_errors = found.get("json", found) if isinstance(found, dict) else {}
    if not isinstance(json_errors, dict):
        return {"_schema": [failed.detail]}
    return _string_keys(json_errors)


def _string_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _string_keys(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_string_keys(item) for item in value]
    return value


def _answer(mutation_id: uuid.UUID, status: MutationStatus, **values: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "mutation_id": mutation_id,
        "status": status,
        "reference": None,
        "version": None,
        "conflict_id": None,
        "errors": None,
    }
    answer.update(values)
    return answer


def _store(
    session: Session,
    batch: _Batch,
    mutation: dict[str, Any],
    mac: bytes,
    outcome: Applied,
    *,
    consumes_seq: bool,
) -> dict[str, Any]:
    """Keep the result (written, sealed, at the end of the request) and record it in the
    access log; use up the seq."""
    case = outcome.case
    reference = case.reference if case is not None else None
    version = case.version if case is not None else None
    result: dict[str, Any] = {
        "status": outcome.status.value,
        "reference": reference,
        "version": version,
        "conflict_id": str(outcome.conflict.id) if outcome.conflict is not None else None,
        "refs": outcome.refs,
        "errors": outcome.errors,
    }
    extra: dict[str, Any] = {}
    if outcome.duplicates is not None:  # the same list, filled before the result is sealed
        result["possible_duplicates"] = extra["possible_duplicates"] = outcome.duplicates
    mutation_id = mutation["mutation_id"]
    device_id = batch.device.id
    batch.new_rows.append(
        {
            "mutation_id": mutation_id,
            "device_id": device_id,
            "device_seq": mutation["device_seq"] if consumes_seq else None,
            "body_mac": mac,
            "status": outcome.status.value,
            "case_id": case.id if case is not None else None,
            "case_version": version,
            "key_id": case.id if case is not None else _results_key(session, batch),
            "created_at": utcnow(),
            "result": result,
        }
    )
    batch.known[mutation_id] = _Known(device_id, mac, result=result)
    if case is not None:
        batch.own_versions.setdefault(case.id, set()).add(case.version)
    if consumes_seq:
        batch.next_seq += 1
    batch.log.append(
        _LogLine(
            reference,
            (f"{mutation['op']}.{outcome.status.value}", *outcome.touched),
            Outcome.FAILURE if outcome.status == MutationStatus.REJECTED else Outcome.SUCCESS,
        )
    )
    return _answer(
        mutation_id,
        outcome.status,
        reference=reference,
        version=version,
        conflict_id=outcome.conflict.id if outcome.conflict is not None else None,
        refs=outcome.refs,
        errors=outcome.errors,
        **extra,
    )


def _write_results(session: Session, batch: _Batch) -> None:
    """Seal the request's results and insert them with one statement."""
    if not batch.new_rows:
        return
    batch.prime(session, *{row["key_id"] for row in batch.new_rows})
    keys = data_key_cache(session)
    sealed = Mutation.result
    rows = []
    for row in batch.new_rows:
        key = keys.get(row["key_id"])
        ids = RowIds(row["key_id"], row["mutation_id"])
        blob = sealed.ciphertext(key, ids, row["result"])
        rows.append(
            {**row, "result": blob, "row_seal": row_seal_for(Mutation, key, ids, {"result": blob})}
        )
    session.execute(_insert_results(), rows)
    batch.new_rows.clear()


@functools.cache
def _insert_results() -> Any:
    """The results' INSERT, built once."""
    return insert(cast(Table, Mutation.__table__))


def _duplicate(
    session: Session, batch: _Batch, mutation_id: uuid.UUID, known: _Known
) -> dict[str, Any]:
    """The stored result of a mutation received before; its case may since be erased."""
    result = known.result
    stored = known.row
    if stored is not None:
        batch.prime(session, stored.key_id)
        result = stored.result
    if result is None:  # the case was erased: its key, and the sealed result, are gone
        reference = None
        if stored is not None and stored.case_id is not None:
            reference = session.scalar(select(Case.reference).where(Case.id == stored.case_id))
        return _answer(
            mutation_id,
            MutationStatus.DUPLICATE,
            reference=reference,
            errors=_errors(RejectionType.GONE),
        )
    conflict_id = result.get("conflict_id")
    extra = {}
    if "possible_duplicates" in result:  # a create's, as first answered
        extra["possible_duplicates"] = result["possible_duplicates"]
    return _answer(
        mutation_id,
        MutationStatus.DUPLICATE,
        reference=result.get("reference"),
        version=result.get("version"),
        conflict_id=uuid.UUID(conflict_id) if conflict_id else None,
        refs=result.get("refs") or {},
        errors=result.get("errors"),
        **extra,
    )


def _results_key(session: Session, batch: _Batch) -> uuid.UUID:
    """The pseudo-case key sealing results that belong to no case; created on first use."""
    if batch.results_key is None:
        if session.get(CaseKey, RESULTS_KEY_ID) is None:
            try:
                with session.begin_nested():
                    provision_case_key(session, RESULTS_KEY_ID)
            except IntegrityError:  # another request created it first
                pass
        batch.results_key = RESULTS_KEY_ID
    return batch.results_key


# --- applying one mutation -----------------------------------------------------------------


@functools.cache
def _intake_schema() -> SyncIntakeIn:
    """One instance for every create: a schema holds no state between loads, and building
    one copies its fields (and its nested members' schema) again."""
    return SyncIntakeIn()


@functools.cache
def _update_schema() -> CaseUpdateIn:
    """One instance for every update (as :func:`_intake_schema`)."""
    return CaseUpdateIn()


def _load(schema: Any, data: Any) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as error:
        messages = (
            error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
        )
        raise Rejected(RejectionType.INVALID, messages) from None
    return loaded


def _create(
    session: Session, principal: Principal, batch: _Batch, changes: dict[str, Any]
) -> Applied:
    """Check and build a create, writing nothing: every refusal (Rejected,
    ValidationFailed, an office that is not active included) comes first, so a refused
    create leaves nothing and needs no savepoint. The case is written with the
    request's other creates (:func:`_write_creates`); its result, references and
    member ids are known already."""
    if not principal.has(Permission.CASES_CREATE):
        raise Rejected(RejectionType.FORBIDDEN)
    household = _load(_intake_schema(), changes)
    device = batch.device
    if household.get("office") not in (None, device.office_code):
        raise Rejected(RejectionType.INVALID, {"office": ["Only the device's own office."]})
    case_ref = household.pop("client_ref")
    member_refs = [member.pop("client_ref") for member in household["members"]]
    refs = [case_ref, *member_refs]
    if len(set(refs)) != len(refs) or batch.taken_refs.intersection(refs):
        raise Rejected(RejectionType.INVALID, {"client_ref": ["Already used."]})
    if batch.reserved is None:  # a read: an inactive office refuses this create
        batch.reserved = cases.reserve_references(session, device.office_code, batch.creates)
    planned = cases.plan_intake(session, principal, household, reserved=batch.reserved)
    # Accepted: nothing below refuses it.
    made = planned.result
    case = made.case
    # The feed seals this view at the end of the request: from the values written, so
    # the new case is not decrypted again (as an update hands its view, _write_update).
    feed.remember_view(session, case, cases.case_view(case, made.stored))
    rows = [{"client_ref": case_ref, "device_id": device.id, "case_id": case.id, "member_id": None}]
    mapping = {str(case_ref): case.reference}
    members: dict[str, str] = {}
    for ref, member in zip(member_refs, case.members, strict=True):
        rows.append(
            {"client_ref": ref, "device_id": device.id, "case_id": case.id, "member_id": member.id}
        )
        mapping[str(ref)] = members[str(ref)] = str(member.id)
    batch.planned.append(planned)
    batch.client_refs.extend(rows)
    batch.created.append((case.reference, tuple(made.fields)))
    batch.created_ids.append(case.id)
    batch.taken_refs.update(refs)
    batch.case_refs[case_ref] = case.id
    batch.member_refs[case.id] = members
    batch.remember_case(case)
    return Applied(
        MutationStatus.APPLIED,
        case=case,
        refs=mapping,
        touched=["case"],
        duplicates=made.possible_duplicates,
    )


def _write_creates(session: Session, principal: Principal, batch: _Batch) -> None:
    """Write the creates accepted since the last call: one INSERT per table (their cases,
    keys, members and blind-index entries), then their in-office duplicate lookups (they
    find each other), which fill each create's ``possible_duplicates`` in its result
    before it is sealed.

    Before an update (it may name one of them) and at the end of the request. Nothing
    here refuses a create: a failure is the database's, and fails the whole request.
    """
    if not batch.planned:
        return
    planned, batch.planned = batch.planned, []
    try:
        cases.write_intakes(session, principal, planned)
    except (Rejected, ValidationFailed) as error:  # would leave half-written creates
        raise RuntimeError("a sync create was refused after it began writing") from error


@functools.cache
def _insert_client_refs() -> Any:
    """The client references of a request's creates, inserted with one statement at its
    end, built once (no unit of work: nothing reads them back in the request)."""
    return insert(cast(Table, ClientRef.__table__))


def _find_case(session: Session, batch: _Batch, reference: str) -> Case:
    """The case an update names (reference or client_ref), locked; Rejected otherwise.

    Read up front with the request's other cases; a case missing there is looked up
    again here (it may have been written since), and found or not, answered the same."""
    case = _prefetched(batch, reference)
    if case is None:
        try:
            where = Case.reference == normalise_reference(reference)
        except InvalidReference:
            ref = _as_uuid(reference)
            found = session.get(ClientRef, ref) if ref is not None else None
            if found is None or found.member_id is not None or found.device_id != batch.device.id:
                raise Rejected(RejectionType.NOT_FOUND) from None
            where = Case.id == found.case_id
        row = session.execute(_case_query(where)).first()
        if row is None:
            raise Rejected(RejectionType.NOT_FOUND)
        case = batch.remember_locked(row)
    return _in_scope(session, batch, case)


def _in_scope(session: Session, batch: _Batch, case: Case) -> Case:
    """``case`` if the device's office holds it and it is not erased; Rejected otherwise."""
    office = batch.device.office_code
    if case.office_code != office:
        was_here = batch.was_here.get(case.id)
        if was_here is None:
            was_here = batch.was_here[case.id] = (
                session.scalar(
                    select(FeedEntry.id).where(
                        FeedEntry.case_id == case.id, FeedEntry.office_code == office
                    )
                )
                is not None
            )
        raise Rejected(RejectionType.EVICTED if was_here else RejectionType.NOT_FOUND)
    if case.is_erased:
        raise Rejected(RejectionType.GONE)
    return case


def _translate(changes: Any, refs: Mapping[str, str]) -> Any:
    """Member ids given as client_refs become the server's ids (before validation)."""
    if not isinstance(changes, dict) or not isinstance(changes.get("members"), dict):
        return changes
    members = dict(changes["members"])

    def server(value: Any) -> Any:
        return refs.get(value, value) if isinstance(value, str) else value

    for name in ("change", "add"):
        if isinstance(members.get(name), list):
            members[name] = [
                {
                    **item,
                    **({"id": server(item["id"])} if "id" in item else {}),
                    **({"mother": server(item["mother"])} if "mother" in item else {}),
                }
                if isinstance(item, dict)
                else item
                for item in members[name]
            ]
    if isinstance(members.get("remove"), list):
        members["remove"] = [server(item) for item in members["remove"]]
    return {**changes, "members": members}


def _update(
    session: Session, principal: Principal, batch: _Batch, mutation: dict[str, Any]
) -> Applied:
    """Check, merge, then write an update, in that order: every refusal (Rejected,
    ValidationFailed) comes before the first write, so a refused update leaves nothing
    and needs no savepoint. Its writes are flushed with the request's others.

    The household is read once (:func:`_household`): the merge view, the household rules
    and the feed's snapshot of the new version all come from it.
    """
    if not principal.has(Permission.CASES_WRITE):
        raise Rejected(RejectionType.FORBIDDEN)
    case = _find_case(session, batch, mutation["reference"])
    batch.prime(session, case.id)
    changes = _load(
        _update_schema(), _translate(mutation["changes"], batch.member_refs.get(case.id, {}))
    )
    base_version = mutation["base_version"]
    if base_version != case.version:
        base_version = _effective_base(batch, case, base_version)
    stored, current = _household(session, batch, case)
    base = current if base_version == case.version else _base(session, batch, case, base_version)
    merge = merge_changes(base, current, changes)
    checked = cases.plan_update(case, merge.changes, stored) if merge.changes else None
    try:
        return _write_update(
            session, batch, mutation, case, (stored, current), checked, merge.conflicts
        )
    except (Rejected, ValidationFailed) as error:  # would leave a half-written mutation
        raise RuntimeError("a sync update was refused after it began writing") from error


def _write_update(
    session: Session,
    batch: _Batch,
    mutation: dict[str, Any],
    case: Case,
    household: tuple[cases.Stored, dict[str, Any]],
    checked: cases.CaseUpdate | None,
    conflicts: list[dict[str, Any]],
) -> Applied:
    stored, current = household
    touched = sorted(cases.apply_update(session, case, checked, stored)) if checked else []
    if touched and checked is not None:
        batch.writes.append((case.reference, tuple(touched)))
        feed.remember_view(session, case, _view_after(case, stored, current, checked))
    conflict = None
    if conflicts:
        conflict = SyncConflict(
            case_id=case.id,
            office_code=case.office_code,
            reference=case.reference,
            device_id=batch.device.id,
            mutation_id=mutation["mutation_id"],
            base_version=mutation["base_version"],
            server_version=case.version,
            status="open",
            version=1,
            created_at=utcnow(),
        )
        conflict.fields = {"items": conflicts}
        session.add(conflict)
    status = MutationStatus.CONFLICT if conflict is not None else MutationStatus.APPLIED
    return Applied(status, case=case, conflict=conflict, touched=touched)


def _view_after(
    case: Case, stored: cases.Stored, current: dict[str, Any], checked: cases.CaseUpdate
) -> dict[str, Any]:
    """The case view after ``checked`` was applied, as ``feed.jsonable`` of
    :func:`cases.case_view` gives it: a member the update did not name keeps its view
    in the merge view (``current``); a changed or added one is viewed again."""
    before = {person["id"]: person for person in current["members"]}
    changed = checked.plan.changes if checked.plan is not None else {}
    members = []
    for member in case.members:
        kept = before.get(str(member.id)) if member.id not in changed else None
        if kept is None:
            kept = feed.jsonable(cases.member_view(member, stored.get(member.id)))
        members.append(kept)
    view: dict[str, Any] = feed.jsonable(cases.case_view_with(case, members))
    return view


def _household(session: Session, batch: _Batch, case: Case) -> tuple[cases.Stored, dict[str, Any]]:
    """The members' values of ``case`` and its merge view (``feed.jsonable`` of
    :func:`cases.case_view`, its case fields from the case row).

    From the feed's sealed snapshot of its version when the lock read one and the
    request has not changed the case since (one row opened, its seal checked, and each
    member row's seal checked; the members' plain column, ``relationship``, from their
    rows), else decrypted from the member rows (:func:`cases.stored_values`). A snapshot
    altered in the database fails (RowIntegrityError), never a silent fallback."""
    values = batch.views.pop(case.id, None)
    if values is not None and not inspect(case).modified:
        view = feed.stored_view(session, values, case)
        members = view.get("members") if view is not None else None
        stored = cases.stored_from_view(case, members)
        if stored is not None:
            by_id = {person["id"]: person for person in cast(list[dict[str, Any]], members)}
            viewed = [
                {**by_id[str(member.id)], "relationship": member.relationship}
                for member in case.members
            ]
            return stored, feed.jsonable(cases.case_view_with(case, viewed))
    stored = cases.stored_values(case)
    return stored, feed.jsonable(cases.case_view(case, stored))


def _base(session: Session, batch: _Batch, case: Case, version: int) -> dict[str, Any] | None:
    """The sealed view of ``case`` at ``version`` (read up front when it could be)."""
    row = batch.bases.get((case.id, version))
    if row is not None:
        return row.snapshot
    return feed.version_snapshot(session, case.id, version)


def _effective_base(batch: _Batch, case: Case, base_version: int) -> int:
    """Skip the versions this device's own earlier mutations produced right after its base.

    A device that edits a case twice offline sends both edits against the version it
    had; its first edit is not someone else's change, so the second merges against it.
    """
    own = batch.own_versions.get(case.id, set())
    while base_version + 1 in own:
        base_version += 1
    return base_version


# --- the three-way merge -------------------------------------------------------------------


@dataclass
class Merge:
    """What to apply (a PATCH body) and what to keep for a person."""

    changes: dict[str, Any] = field(default_factory=dict)
    conflicts: list[dict[str, Any]] = field(default_factory=list)

    def conflict(self, path: str, server: Any, device: Any) -> None:
        self.conflicts.append({"field": path, "server": server, "device": device})


def merge_changes(
    base: Mapping[str, Any] | None, current: Mapping[str, Any], changes: Mapping[str, Any]
) -> Merge:
    """Merge a PATCH body (``CaseUpdateIn`` data) made against ``base`` into ``current``.

    Views are JSON (see :func:`casework.sync.feed.jsonable`). Without a base (a version
    never recorded), every field the device would change to a value other than the
    server's is a conflict.
    """
    merge = Merge()
    if "specific_needs" in changes:
        _merge_needs(merge, base, current, list(changes["specific_needs"]))
    operations = changes.get("members") or {}
    base_members = {m["id"]: m for m in (base or {}).get("members", [])}
    current_members = {m["id"]: m for m in current.get("members", [])}
    patch: dict[str, Any] = {}
    if operations.get("add"):
        patch["add"] = list(operations["add"])
    changed = []
    for change in operations.get("change", []):
        kept = _merge_member(merge, base, base_members, current_members, change)
        if kept is not None:
            changed.append(kept)
    if changed:
        patch["change"] = changed
    removed = []
    for member_id in operations.get("remove", []):
        key = str(member_id)
        now = current_members.get(key)
        if now is None:
            continue  # already gone on the server: the same outcome
        if base is not None and base_members.get(key) == now:
            removed.append(member_id)
        else:
            merge.conflict(f"members.{key}", now, None)
    if removed:
        patch["remove"] = removed
    if patch:
        merge.changes["members"] = patch
    return merge


def _merge_needs(
    merge: Merge, base: Mapping[str, Any] | None, current: Mapping[str, Any], wanted: list[str]
) -> None:
    now = list(current.get("specific_needs") or [])
    if base is None:
        if set(now) != set(wanted):
            merge.conflict("specific_needs", now, wanted)
        return
    before = set(base.get("specific_needs") or [])
    added, removed = set(wanted) - before, before - set(wanted)
    result = [code for code in now if code not in removed]
    result += sorted(added - set(result))
    if result != now:
        merge.changes["specific_needs"] = result


def _merge_member(
    merge: Merge,
    base: Mapping[str, Any] | None,
    base_members: Mapping[str, Any],
    current_members: Mapping[str, Any],
    change: Mapping[str, Any],
) -> dict[str, Any] | None:
    key = str(change["id"])
    proposed = {name: value for name, value in change.items() if name != "id"}
    now = current_members.get(key)
    if now is None:
        merge.conflict(f"members.{key}", None, feed.jsonable(proposed))
        return None
    before = base_members.get(key) if base is not None else None
    kept: dict[str, Any] = {}
    for name, value in proposed.items():
        wanted, server = feed.jsonable(value), now.get(name)
        if wanted == server:
            continue
        if before is not None and before.get(name, _MISSING) == server:
            kept[name] = value
        else:
            merge.conflict(f"members.{key}.{name}", server, wanted)
    return {"id": change["id"], **kept} if kept else None
