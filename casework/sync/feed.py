"""The change feed: one entry per (office, case), sequence numbers in commit order.

A writing transaction that touched cases publishes them just before it commits
(:func:`install` hooks the request session): under the row lock of the feed clock
(held until the commit) it allocates the next sequence numbers, moves each case's
entry of its office to the new number (``upsert``, or ``delete`` once erased),
turns the entry of an office the case left into ``evict``, seals the case view at
its version (:class:`~casework.sync.models.CaseVersion`), and updates the office's
checkpoint. Because the lock is held to the commit, a transaction that commits
later always gets a larger number: a reader never sees seq n+1 without seq n, so
no cursor it was given can skip a change. (SQLite serialises every writer anyway.)

Checkpoint: ``count`` is the number of ``upsert`` entries of the office (cases in
scope); ``checksum`` is the XOR, over those cases, of SHA-256 of the ASCII text
``"<reference>:<version>"``, as 64 hex digits (all zeros for no case).
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import Table, bindparam, delete, event, insert, inspect, select, tuple_, update
from sqlalchemy.orm import Session, selectinload

from casework.api import jsonable
from casework.audit import SYSTEM, AuditAction
from casework.audit.service import record_many
from casework.authz.access import Principal
from casework.cases.models import Case
from casework.cases.service import case_view
from casework.security.case_keys import SESSION_INFO_KEY, data_key_cache
from casework.security.columns import (
    ROW_SEAL_COLUMN,
    RowIds,
    read_sealed_columns,
    row_seal_for,
    sealed_attributes,
    sealed_columns,
)
from casework.security.data_key_cache import DataKeyCache
from casework.security.envelope import WrappedKey
from casework.security.errors import RowIntegrityError
from casework.security.models import CaseKey
from casework.sync.codes import ChangeOp
from casework.sync.models import CaseVersion, FeedClock, FeedEntry, OfficeFeed
from casework.timestamps import utcnow
from casework.workflow.models import CaseWorkflow
from casework.workflow.service import workflow_view

TOUCHED = "casework.sync.touched"
CAPTURED = "casework.sync.captured"
VIEWS = "casework.sync.views"
_UNKNOWN = object()
_PUBLISHING = "casework.sync.publishing"
ZERO = bytes(32)
CLOCK_ID = 1
_PURGE_BATCH = 200
_BACKFILL_BATCH = 500
#: What a sealed snapshot holds, as the access log names it (a pull or a backfill).
SNAPSHOT_FIELDS = ("case", "members", "workflow.states")
#: Nobody's permissions: the workflow view it gets holds only what every reader sees.
_NOBODY = Principal(user_id=None, role="sync-feed", office=None)


def pair_digest(reference: str, version: int) -> bytes:
    """SHA-256 of ``"<reference>:<version>"``: one case's share of the checksum."""
    return hashlib.sha256(f"{reference}:{version}".encode("ascii")).digest()


def xor(left: bytes, right: bytes) -> bytes:
    return (int.from_bytes(left, "big") ^ int.from_bytes(right, "big")).to_bytes(32, "big")


def checksum_of(pairs: Iterable[tuple[str, int]]) -> str:
    """The checkpoint checksum of (reference, version) pairs, as a client computes it."""
    total = ZERO
    for reference, version in pairs:
        total = xor(total, pair_digest(reference, version))
    return total.hex()


# --- the case view a device receives ------------------------------------------------------


def device_view(
    session: Session,
    case: Case,
    workflow: CaseWorkflow | object | None = _UNKNOWN,
    view: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``GET /cases/{reference}`` less what depends on the caller or the moment: the case,
    its members and the workflow states (no ``allowed_transitions``, no duplicates, no
    sealed workflow outcomes, whose visibility depends on the reader's permissions).
    ``workflow``: the case's workflow row when the caller loaded it already (or None);
    ``view``: the case's :func:`case_view` when the caller built it already."""
    view = dict(case_view(case) if view is None else view)
    row = session.get(CaseWorkflow, case.id) if workflow is _UNKNOWN else workflow
    view["workflow"] = workflow_view(_NOBODY, case, row)  # type: ignore[arg-type]
    result: dict[str, Any] = jsonable(view)
    return result


def remember_view(session: Session, case: Case, view: dict[str, Any]) -> None:
    """Hand the feed the :func:`case_view` of ``case`` at its current version, built by a
    writer that had the values in hand (a sync push), so that publishing it does not
    decrypt the case again. Only for this version: a later write bumps the version."""
    views: dict[tuple[uuid.UUID, int], dict[str, Any]] = session.info.setdefault(VIEWS, {})
    views[(case.id, case.version)] = view


def capture_version(
    session: Session,
    case: Case,
    *,
    stored: bool | None = None,
    workflow: CaseWorkflow | object | None = _UNKNOWN,
) -> None:
    """Seal the case view at its current version, once per version and transaction.

    ``stored`` (when the caller knows whether a row exists already) saves a query.
    """
    captured: dict[tuple[uuid.UUID, int], CaseVersion] = session.info.setdefault(CAPTURED, {})
    known = captured.get((case.id, case.version))
    if known is not None and known in session:  # not undone by a rolled-back savepoint
        return
    with session.no_autoflush:
        found = None
        if stored is not False:
            found = session.scalar(
                select(CaseVersion).where(
                    CaseVersion.case_id == case.id, CaseVersion.version == case.version
                )
            )
        if found is None:
            found = CaseVersion(case_id=case.id, version=case.version, created_at=utcnow())
            session.add(found)
        views = session.info.get(VIEWS)
        view = views.pop((case.id, case.version), None) if views else None
        found.snapshot = device_view(session, case, workflow, view)
    captured[(case.id, case.version)] = found


#: What the case load selects of the snapshot at the case's version (for :func:`stored_view`).
STORED_VIEW_COLUMNS = (
    CaseVersion.id.label("snapshot_row_id"),
    CaseVersion.version.label("snapshot_version"),
    *sealed_attributes(CaseVersion),
)


def stored_view(session: Session, values: Sequence[Any], case: Case) -> dict[str, Any] | None:
    """The snapshot of ``case`` at its version, from the :data:`STORED_VIEW_COLUMNS` the
    case load selected (``values``), as the case read's stored view (registered by
    :func:`casework.sync.init_app`); None when there is no such row. Its row seal is
    checked before it is opened (as reading the attribute would), and a snapshot that
    names another case or version (a row moved to another version number outside
    casework) fails like any altered row: RowIntegrityError, never another view. (None
    too when the request changed the case's version since the load.)"""
    row_id, version, *sealed = values
    if row_id is None or version != case.version:
        return None
    ciphertexts = dict(zip(_SNAPSHOT_ATTRS, sealed[:-1], strict=True))
    ids = RowIds(case.id, row_id)
    opened = read_sealed_columns(session, CaseVersion, ids, sealed[-1], ciphertexts, _SNAPSHOT)
    snapshot = opened["snapshot"]
    if (
        type(snapshot) is not dict
        or snapshot.get("reference") != case.reference
        or snapshot.get("version") != case.version
    ):
        raise RowIntegrityError(_table(CaseVersion).name, CaseVersion.snapshot.name_in_table)
    return snapshot


_SNAPSHOT = ("snapshot",)
_SNAPSHOT_ATTRS = tuple(attr for _column, attr in sealed_columns(CaseVersion))


def version_snapshot(session: Session, case_id: uuid.UUID, version: int) -> dict[str, Any] | None:
    """The sealed view of a case at ``version``, or None when it was never recorded."""
    row = session.scalar(
        select(CaseVersion).where(CaseVersion.case_id == case_id, CaseVersion.version == version)
    )
    return None if row is None else row.snapshot


# --- publishing ----------------------------------------------------------------------------


_INSTALLED = "casework.sync.feed_installed"


def install(session: Session) -> None:
    """Hook a request session: collect the cases it writes, publish them at commit.

    The listeners are the Session class's, added once and acting only on sessions
    marked here: listening on each request's session object cost about as much as
    a statement, on every request, reads included.
    """
    session.info[_INSTALLED] = True
    if not event.contains(Session, "before_flush", _collect):
        event.listen(Session, "before_flush", _collect)
        event.listen(Session, "before_commit", _publish_before_commit)


def _collect(session: Session, _context: Any, _instances: Any) -> None:
    if not session.info.get(_INSTALLED):
        return
    touched: dict[uuid.UUID, Case] = session.info.setdefault(TOUCHED, {})
    for obj in (*session.new, *session.dirty):
        if isinstance(obj, Case):
            touched[obj.id] = obj


def _publish_before_commit(session: Session) -> None:
    if not session.info.get(_INSTALLED):
        return
    if session.in_nested_transaction():
        return  # a savepoint: the outer commit publishes
    publish(session)


def publish(session: Session) -> int | None:
    """Publish the cases this transaction wrote; return the feed's last seq (None if none).

    Takes the feed clock's lock until the commit: call it as late as possible.
    """
    if session.info.get(_PUBLISHING):
        return None
    session.info[_PUBLISHING] = True
    try:
        session.flush()
        touched: dict[uuid.UUID, Case] = session.info.pop(TOUCHED, {})
        # A case added in a savepoint that was rolled back was collected at its flush,
        # but is transient again: it was never written.
        cases = [touched[key] for key in sorted(touched) if not inspect(touched[key]).transient]
        if not cases:
            return None
        return _publish(session, cases)
    finally:
        session.info[_PUBLISHING] = False
        session.info.pop(VIEWS, None)  # views of this transaction only


@dataclass
class _Target:
    office: str
    case: Case
    op: ChangeOp


#: What moving a case's entry to a new sequence number rewrites.
_MOVED = ("seq", "op", "reference", "version", "changed_at")


@functools.cache
def _statements() -> dict[str, Any]:
    """:func:`_publish`'s statements, built once with their values bound at run time (a
    statement built per call computes its cache key again each time, on every push)."""
    ids: Any = bindparam("ids", expanding=True)
    return {
        "clock": select(FeedClock).where(FeedClock.id == CLOCK_ID).with_for_update(),
        "entries": select(
            FeedEntry.id,
            FeedEntry.office_code,
            FeedEntry.case_id,
            FeedEntry.op,
            FeedEntry.reference,
            FeedEntry.version,
        ).where(FeedEntry.case_id.in_(ids)),
        "versions": select(CaseVersion.case_id, CaseVersion.version).where(
            tuple_(CaseVersion.case_id, CaseVersion.version).in_(bindparam("pairs", expanding=True))
        ),
        "workflows": select(CaseWorkflow).where(CaseWorkflow.case_id.in_(ids)),
        "keys": select(CaseKey.case_id, CaseKey.kek_id, CaseKey.wrapped_key).where(
            CaseKey.case_id.in_(ids)
        ),
        "offices": select(OfficeFeed).where(
            OfficeFeed.office_code.in_(bindparam("codes", expanding=True))
        ),
        "add_versions": insert(_table(CaseVersion)),
        "add_entries": insert(FeedEntry),
        # By primary key, as plain rows (no ORM bulk update: no entry is an object here).
        "move_entries": update(_table(FeedEntry))
        .where(_table(FeedEntry).c.id == bindparam("entry_id"))
        .values({name: bindparam(name) for name in _MOVED}),
        "purge": delete(FeedEntry)
        .where(
            FeedEntry.id.in_(
                select(FeedEntry.id)
                .where(
                    FeedEntry.op != ChangeOp.UPSERT.value,
                    FeedEntry.changed_at < bindparam("cutoff"),
                )
                .limit(_PURGE_BATCH)
                .scalar_subquery()
            )
        )
        .execution_options(synchronize_session=False),
    }


def _publish(session: Session, cases: list[Case]) -> int:
    statements = _statements()
    clock = session.scalar(statements["clock"])
    if clock is None:  # pragma: no cover - the migration creates the row
        clock = FeedClock(id=CLOCK_ID, last_seq=0)
        session.add(clock)
        session.flush()
    ids = [case.id for case in cases]
    existing = {
        (row.office_code, row.case_id): row
        for row in session.execute(statements["entries"], {"ids": ids})
    }
    by_case: dict[uuid.UUID, list[Any]] = {}
    for row in existing.values():
        by_case.setdefault(row.case_id, []).append(row)
    # Which cases have a snapshot of their version already: only those versions are read
    # (a case's older versions, one per write it ever had, are not).
    pairs = [(case.id, case.version) for case in cases]
    stored = {
        (row.case_id, row.version)
        for row in session.execute(statements["versions"], {"pairs": pairs})
    }
    workflows = {row.case_id: row for row in session.scalars(statements["workflows"], {"ids": ids})}
    _prime_keys(session, ids)
    targets: list[_Target] = []
    versions: list[dict[str, Any]] = []
    for case in cases:
        if case.erased_at is not None:
            targets.append(_Target(case.office_code, case, ChangeOp.DELETE))
            continue
        if (case.id, case.version) in stored:
            capture_version(session, case, stored=True, workflow=workflows.get(case.id))
        else:
            versions.append(_version_row(session, case, workflows.get(case.id)))
        targets.append(_Target(case.office_code, case, ChangeOp.UPSERT))
        for row in by_case.get(case.id, ()):
            if row.office_code != case.office_code and row.op == ChangeOp.UPSERT:
                targets.append(_Target(row.office_code, case, ChangeOp.EVICT))
    seq = clock.last_seq
    clock.last_seq = seq + len(targets)
    offices = _office_states(session, {t.office for t in targets})
    now = utcnow()
    added: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []
    for target in targets:
        seq += 1
        old = existing.get((target.office, target.case.id))
        values = {
            "seq": seq,
            "op": target.op.value,
            "reference": target.case.reference,
            "version": target.case.version,
            "changed_at": now,
        }
        if old is None:
            added.append(
                {"id": uuid.uuid4(), "office_code": target.office, "case_id": target.case.id}
                | values
            )
        else:
            moved.append({"entry_id": old.id} | values)
        _account(offices[target.office], old, target)
        offices[target.office].last_seq = seq
    # One statement each for the new versions, entries and moved ones, however many cases.
    if versions:
        session.execute(statements["add_versions"], versions)
    if added:
        session.execute(statements["add_entries"], added)
    if moved:
        session.execute(statements["move_entries"], moved)
    session.flush()
    _purge_tombstones(session, now)
    return clock.last_seq


def _version_row(session: Session, case: Case, workflow: CaseWorkflow | None) -> dict[str, Any]:
    """The row sealing ``case``'s view at its version, for an insert of many (the same
    ciphertext and row seal as :func:`capture_version`'s object, without a unit of work)."""
    views = session.info.get(VIEWS)
    view = views.pop((case.id, case.version), None) if views else None
    row_id = uuid.uuid4()
    ids = RowIds(case.id, row_id)
    key = data_key_cache(session).get(case.id)
    blob = CaseVersion.snapshot.ciphertext(key, ids, device_view(session, case, workflow, view))
    return {
        "id": row_id,
        "case_id": case.id,
        "version": case.version,
        "created_at": utcnow(),
        CaseVersion.snapshot.name_in_table: blob,
        ROW_SEAL_COLUMN: row_seal_for(
            CaseVersion, key, ids, {CaseVersion.snapshot.name_in_table: blob}
        ),
    }


def _table(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


def _prime_keys(session: Session, ids: list[uuid.UUID]) -> None:
    """Read the wrapped keys of ``ids`` the session has not unwrapped yet (a push has
    unwrapped its cases' keys already) in one query; unwrapped on first use."""
    keys = session.info.get(SESSION_INFO_KEY)
    if not isinstance(keys, DataKeyCache):
        return
    missing = [case_id for case_id in ids if case_id not in keys]
    if missing:
        rows = session.execute(_statements()["keys"], {"ids": missing})
        keys.prime({row.case_id: WrappedKey(row.kek_id, bytes(row.wrapped_key)) for row in rows})


def _office_states(session: Session, codes: set[str]) -> dict[str, OfficeFeed]:
    states = {
        row.office_code: row
        for row in session.scalars(_statements()["offices"], {"codes": sorted(codes)})
    }
    for code in codes - set(states):
        states[code] = OfficeFeed(office_code=code, last_seq=0, count=0, checksum=ZERO)
        session.add(states[code])
    return states


def _account(state: OfficeFeed, old: Any, target: _Target) -> None:
    """Keep the office's count and checksum equal to its upsert entries."""
    checksum = bytes(state.checksum)
    if old is not None and old.op == ChangeOp.UPSERT:
        state.count -= 1
        checksum = xor(checksum, pair_digest(old.reference, old.version))
    if target.op == ChangeOp.UPSERT:
        state.count += 1
        checksum = xor(checksum, pair_digest(target.case.reference, target.case.version))
    state.checksum = checksum


def retention() -> timedelta:
    days = 180
    if has_app_context():
        days = current_app.config["CASEWORK"]["sync_tombstone_retention_days"]
    return timedelta(days=days)


def _purge_tombstones(session: Session, now: datetime) -> None:
    """Forget a few tombstones older than the retention (cursors that old must resync)."""
    session.execute(_statements()["purge"], {"cutoff": now - retention()})


def last_seq(session: Session) -> int:
    clock = session.get(FeedClock, CLOCK_ID)
    return 0 if clock is None else clock.last_seq


def backfill(session: Session, on_batch: Callable[[], None] | None = None) -> int:
    """Publish every live case that has no feed entry yet (cases written in bulk, or
    before sync was installed); returns how many were published. Idempotent: a case
    with an entry is skipped. ``on_batch`` runs after each batch (a command commits
    there, so the feed clock's lock is not held for the whole run).

    Each case is decrypted to seal its snapshot: one ``sync.backfill`` entry per case,
    by the system, in the batch's transaction."""
    published = select(FeedEntry.case_id)
    ids = list(
        session.scalars(select(Case.id).where(Case.erased_at.is_(None), Case.id.not_in(published)))
    )
    for start in range(0, len(ids), _BACKFILL_BATCH):
        chunk = sorted(ids[start : start + _BACKFILL_BATCH])
        cases = session.scalars(
            select(Case).where(Case.id.in_(chunk)).options(selectinload(Case.members))
        ).all()
        ordered = sorted(cases, key=lambda c: c.id)
        _publish(session, ordered)
        references = [case.reference for case in ordered]
        record_many(
            AuditAction.SYNC_BACKFILL,
            references,
            fields=SNAPSHOT_FIELDS,
            actor=SYSTEM,
            session=session,
        )
        if on_batch is not None:
            on_batch()
    return len(ids)
