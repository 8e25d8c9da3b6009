"""Push: offline mutations applied exactly once, in device order, merged field by field.

Each mutation runs in its own savepoint together with its stored result and its
access-log entry; the request commits them with their change-feed rows. The
device row is locked first, so two requests carrying the same mutation queue up
and the second finds the first's stored result (``duplicate``). Results are kept
forever, sealed under the case's key; the mutation itself is kept only as an
HMAC of its canonical JSON, to tell a resend from a different body.

Three-way merge against the sealed view at ``base_version``: a field is a
top-level field (``specific_needs``, merged as a set of additions and removals),
a member's field (``members.<id>.<field>``) or a whole member (removal). What the
server did not change since the base takes the device's value; what both
changed to different values keeps the server's value, and the device's proposal
is stored as a conflict for a person to resolve.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from casework.audit import AuditAction, Outcome
from casework.audit.service import record_many
from casework.authz.access import Principal
from casework.authz.permissions import Permission
from casework.cases import service as cases
from casework.cases.models import Case
from casework.cases.reference import InvalidReference, normalise_reference
from casework.cases.schemas import CaseUpdateIn
from casework.errors import ValidationFailed
from casework.security.app import derived_secret
from casework.security.case_keys import provision_case_key
from casework.security.models import CaseKey
from casework.sync import feed
from casework.sync.codes import MutationOp, MutationStatus, RejectionType
from casework.sync.models import (
    RESULTS_KEY_ID,
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
    ids = [mutation["mutation_id"] for mutation in mutations]
    list(session.scalars(select(Mutation).where(Mutation.mutation_id.in_(ids))))  # one read
    log: list[_LogLine] = []
    results = []
    blocked = False
    for mutation in mutations:
        result = _one(session, principal, device, mutation, blocked, log)
        blocked = blocked or result["status"] == MutationStatus.OUT_OF_ORDER
        results.append(result)
    _record(session, log)
    published = feed.publish(session)
    return {
        "results": results,
        "write_checkpoint": published if published is not None else feed.last_seq(session),
    }


@dataclass(frozen=True)
class _LogLine:
    reference: str | None
    fields: tuple[str, ...]
    outcome: Outcome


def _record(session: Session, log: list[_LogLine]) -> None:
    """One ``sync.push`` entry per stored result, appended together (same transaction as
    the results, so they commit or vanish with them), grouped by fields and outcome."""
    groups: dict[tuple[tuple[str, ...], Outcome], list[str | None]] = {}
    for line in log:
        groups.setdefault((line.fields, line.outcome), []).append(line.reference)
    for (fields, outcome), references in groups.items():
        record_many(
            AuditAction.SYNC_PUSH, references, fields=fields, outcome=outcome, session=session
        )


def body_mac(mutation: Mapping[str, Any]) -> bytes:
    canonical = json.dumps(feed.jsonable(dict(mutation)), sort_keys=True, separators=(",", ":"))
    return hmac.new(derived_secret("sync/mutation"), canonical.encode(), hashlib.sha256).digest()


def _one(
    session: Session,
    principal: Principal,
    device: Device,
    mutation: dict[str, Any],
    blocked: bool,
    log: list[_LogLine],
) -> dict[str, Any]:
    mutation_id: uuid.UUID = mutation["mutation_id"]
    mac = body_mac(mutation)
    stored = session.get(Mutation, mutation_id)
    op = mutation["op"]
    if stored is not None:
        if stored.device_id != device.id or bytes(stored.body_mac) != mac:
            log.append(_LogLine(None, (f"{op}.rejected", "reused-id"), Outcome.FAILURE))
            return _answer(
                mutation_id, MutationStatus.REJECTED, errors=_errors(RejectionType.REUSED_ID)
            )
        answer = _duplicate(session, stored)
        log.append(_LogLine(answer["reference"], (f"{op}.duplicate",), Outcome.SUCCESS))
        return answer
    seq = mutation["device_seq"]
    if blocked or seq > device.next_seq:
        log.append(_LogLine(None, (f"{op}.out_of_order",), Outcome.FAILURE))
        return {
            "mutation_id": mutation_id,
            "status": MutationStatus.OUT_OF_ORDER,
            "expected_seq": device.next_seq,
        }
    if seq < device.next_seq:
        outcome = Applied(MutationStatus.REJECTED, errors=_errors(RejectionType.REUSED_SEQ))
        return _store(session, device, mutation, mac, outcome, log, consumes_seq=False)
    try:
        with session.begin_nested():
            outcome = _apply(session, principal, device, mutation)
    except Rejected as refused:
        outcome = Applied(MutationStatus.REJECTED, errors=_errors(refused.kind, refused.fields))
    except ValidationFailed as failed:
        outcome = Applied(
            MutationStatus.REJECTED, errors=_errors(RejectionType.INVALID, _field_errors(failed))
        )
    return _store(session, device, mutation, mac, outcome, log, consumes_seq=True)


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
    device: Device,
    mutation: dict[str, Any],
    mac: bytes,
    outcome: Applied,
    log: list[_LogLine],
    *,
    consumes_seq: bool,
) -> dict[str, Any]:
    """Keep the result (sealed) and record it in the access log; use up the seq."""
    case = outcome.case
    reference = case.reference if case is not None else None
    result: dict[str, Any] = {
        "status": outcome.status.value,
        "reference": case.reference if case is not None else None,
        "version": case.version if case is not None else None,
        "conflict_id": str(outcome.conflict.id) if outcome.conflict is not None else None,
        "refs": outcome.refs,
        "errors": outcome.errors,
    }
    key_id = case.id if case is not None else _results_key(session)
    row = Mutation(
        mutation_id=mutation["mutation_id"],
        device_id=device.id,
        device_seq=mutation["device_seq"] if consumes_seq else None,
        body_mac=mac,
        status=outcome.status.value,
        case_id=case.id if case is not None else None,
        case_version=case.version if case is not None else None,
        key_id=key_id,
        created_at=utcnow(),
    )
    row.result = result
    session.add(row)
    if consumes_seq:
        device.next_seq += 1
    session.flush()
    log.append(
        _LogLine(
            reference,
            (f"{mutation['op']}.{outcome.status.value}", *outcome.touched),
            Outcome.FAILURE if outcome.status == MutationStatus.REJECTED else Outcome.SUCCESS,
        )
    )
    return _answer(
        mutation["mutation_id"],
        outcome.status,
        reference=result["reference"],
        version=result["version"],
        conflict_id=outcome.conflict.id if outcome.conflict is not None else None,
        refs=outcome.refs,
        errors=outcome.errors,
    )


def _duplicate(session: Session, stored: Mutation) -> dict[str, Any]:
    """The stored result of a mutation received before; its case may since be erased."""
    result = stored.result
    if result is None:  # the case was erased: its key, and the sealed result, are gone
        reference = None
        if stored.case_id is not None:
            reference = session.scalar(select(Case.reference).where(Case.id == stored.case_id))
        return _answer(
            stored.mutation_id,
            MutationStatus.DUPLICATE,
            reference=reference,
            errors=_errors(RejectionType.GONE),
        )
    conflict_id = result.get("conflict_id")
    return _answer(
        stored.mutation_id,
        MutationStatus.DUPLICATE,
        reference=result.get("reference"),
        version=result.get("version"),
        conflict_id=uuid.UUID(conflict_id) if conflict_id else None,
        refs=result.get("refs") or {},
        errors=result.get("errors"),
    )


def _results_key(session: Session) -> uuid.UUID:
    """The pseudo-case key sealing results that belong to no case; created on first use."""
    if session.get(CaseKey, RESULTS_KEY_ID) is None:
        try:
            with session.begin_nested():
                provision_case_key(session, RESULTS_KEY_ID)
        except IntegrityError:  # another request created it first
            pass
    return RESULTS_KEY_ID


# --- applying one mutation -----------------------------------------------------------------


def _apply(
    session: Session, principal: Principal, device: Device, mutation: dict[str, Any]
) -> Applied:
    if mutation["op"] == MutationOp.CREATE:
        return _create(session, principal, device, mutation["changes"])
    return _update(session, principal, device, mutation)


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
    session: Session, principal: Principal, device: Device, changes: dict[str, Any]
) -> Applied:
    if not principal.has(Permission.CASES_CREATE):
        raise Rejected(RejectionType.FORBIDDEN)
    household = _load(SyncIntakeIn(), changes)
    if household.get("office") not in (None, device.office_code):
        raise Rejected(RejectionType.INVALID, {"office": ["Only the device's own office."]})
    case_ref = household.pop("client_ref")
    member_refs = [member.pop("client_ref") for member in household["members"]]
    refs = [case_ref, *member_refs]
    taken = session.scalars(select(ClientRef.client_ref).where(ClientRef.client_ref.in_(refs)))
    if len(set(refs)) != len(refs) or list(taken):
        raise Rejected(RejectionType.INVALID, {"client_ref": ["Already used."]})
    case = cases.intake(session, principal, household).case
    session.add(ClientRef(client_ref=case_ref, device_id=device.id, case_id=case.id))
    mapping = {str(case_ref): case.reference}
    for ref, member in zip(member_refs, case.members, strict=True):
        session.add(
            ClientRef(client_ref=ref, device_id=device.id, case_id=case.id, member_id=member.id)
        )
        mapping[str(ref)] = str(member.id)
    return Applied(MutationStatus.APPLIED, case=case, refs=mapping, touched=["case"])


def _find_case(session: Session, device: Device, reference: str) -> Case:
    """The case an update names (reference or client_ref), locked; Rejected otherwise."""
    case_id: uuid.UUID | None = None
    try:
        canonical = normalise_reference(reference)
        case = session.scalar(
            select(Case)
            .where(Case.reference == canonical)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return _in_scope(session, device, case)
    except InvalidReference:
        try:
            ref = session.get(ClientRef, uuid.UUID(reference))
        except ValueError:
            ref = None
        if ref is not None and ref.member_id is None and ref.device_id == device.id:
            case_id = ref.case_id
    if case_id is None:
        raise Rejected(RejectionType.NOT_FOUND)
    case = session.scalar(
        select(Case)
        .where(Case.id == case_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return _in_scope(session, device, case)


def _in_scope(session: Session, device: Device, case: Case | None) -> Case:
    """``case`` if the device's office holds it and it is not erased; Rejected otherwise."""
    if case is None:
        raise Rejected(RejectionType.NOT_FOUND)
    if case.office_code != device.office_code:
        was_here = session.scalar(
            select(FeedEntry.id).where(
                FeedEntry.case_id == case.id, FeedEntry.office_code == device.office_code
            )
        )
        raise Rejected(RejectionType.EVICTED if was_here else RejectionType.NOT_FOUND)
    if case.is_erased:
        raise Rejected(RejectionType.GONE)
    return case


def _member_ids(session: Session, device: Device, case: Case) -> dict[str, str]:
    """This device's client_refs of the case's members -> the members' ids."""
    rows = session.execute(
        select(ClientRef.client_ref, ClientRef.member_id).where(
            ClientRef.case_id == case.id,
            ClientRef.device_id == device.id,
            ClientRef.member_id.is_not(None),
        )
    )
    return {str(ref): str(member_id) for ref, member_id in rows}


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
    session: Session, principal: Principal, device: Device, mutation: dict[str, Any]
) -> Applied:
    if not principal.has(Permission.CASES_WRITE):
        raise Rejected(RejectionType.FORBIDDEN)
    case = _find_case(session, device, mutation["reference"])
    changes = _load(
        CaseUpdateIn(), _translate(mutation["changes"], _member_ids(session, device, case))
    )
    base_version = mutation["base_version"]
    if base_version != case.version:
        base_version = _effective_base(session, device, case, base_version)
    current = feed.jsonable(cases.case_view(case))
    base = current if base_version == case.version else None
    if base is None:
        base = feed.version_snapshot(session, case.id, base_version)
    merge = merge_changes(base, current, changes)
    touched = sorted(cases.update_case(session, case, merge.changes)) if merge.changes else []
    conflict = None
    if merge.conflicts:
        conflict = SyncConflict(
            case_id=case.id,
            office_code=case.office_code,
            reference=case.reference,
            device_id=device.id,
            mutation_id=mutation["mutation_id"],
            base_version=mutation["base_version"],
            server_version=case.version,
            status="open",
            version=1,
            created_at=utcnow(),
        )
        conflict.fields = {"items": merge.conflicts}
        session.add(conflict)
        session.flush()
    status = MutationStatus.CONFLICT if conflict is not None else MutationStatus.APPLIED
    return Applied(status, case=case, conflict=conflict, touched=touched)


def _effective_base(session: Session, device: Device, case: Case, base_version: int) -> int:
    """Skip the versions this device's own earlier mutations produced right after its base.

    A device that edits a case twice offline sends both edits against the version it
    had; its first edit is not someone else's change, so the second merges against it.
    """
    own = set(
        session.scalars(
            select(Mutation.case_version).where(
                Mutation.case_id == case.id,
                Mutation.device_id == device.id,
                Mutation.case_version > base_version,
            )
        )
    )
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
