"""Recording accesses: in the same transaction as a change, by group commit for a read.

``record`` appends an entry to the hash chain. Appends are serialised so the
chain never forks: on PostgreSQL by a transaction-scoped advisory lock, held
until the transaction commits; on SQLite by the write lock (``BEGIN
IMMEDIATE``).

* A request that changes something writes its entries in its own transaction,
  under the lock: the change and its entry commit together or not at all, so a
  rolled-back change leaves no success entry and a committed one always has
  its entry.
* A request that only reads (``db.is_read_mode``) never takes the lock: its
  entries are kept on the session and, once its snapshot transaction has
  ended, handed to the process's group committer
  (:mod:`casework.audit.appender`), which writes many requests' entries in one
  transaction and integrates them into the tiles. The request waits until its
  entries are durable; if the batch fails the response becomes a 500, so no
  response carrying case data leaves without its entry.

An append that makes a checkpoint due signs it in the same transaction
(:mod:`casework.audit.signer`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask, current_app, g, has_app_context, has_request_context, request
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.orm import Mapper, Session, sessionmaker

from casework import db
from casework.audit import checkpoint, keys, signer, tree
from casework.audit.actions import AuditAction, Outcome
from casework.audit.appender import GroupCommit
from casework.audit.encoding import (
    ENCODING_VERSION,
    GENESIS_HASH,
    AuditRecord,
    ChainedRecord,
    body_parts,
    derived,
    pack_head,
    target_bytes,
)
from casework.audit.models import ENTRY_COLUMNS, AuditCheckpoint, AuditEntry, to_micros

log = logging.getLogger("casework.audit")

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


PENDING = "casework_audit_pending"
"""``Session.info`` key: a read-mode request's entries, appended after its snapshot ends."""


def record(
    action: AuditAction,
    *,
    target: str | None = None,
    fields: Iterable[str] = (),
    outcome: Outcome = Outcome.SUCCESS,
    actor: Actor | None = None,
    session: Session | None = None,
) -> ChainedRecord | None:
    """Append one entry; return it sealed in the chain, or None when it is deferred.

    ``actor`` defaults to the request's principal (anonymous when none) or,
    outside a request, to the system. ``fields`` are names, never values.

    In a request that has changed nothing (``db.is_read_mode``) the entry is
    kept aside and appended by group commit once the request's snapshot
    transaction ends, before the response leaves (see :func:`init_app`);
    otherwise it is written in the caller's transaction, under the log's lock.
    """
    current = session if session is not None else db.session()
    draft = _build(action, target, fields, outcome, actor)
    if db.is_read_mode(current):
        current.info.setdefault(PENDING, []).append(draft)
        return None
    return append(current, [draft])[0]


def record_many(
    action: AuditAction,
    targets: Sequence[str | None],
    *,
    fields: Iterable[str] = (),
    outcome: Outcome = Outcome.SUCCESS,
    actor: Actor | None = None,
    session: Session | None = None,
) -> list[ChainedRecord]:
    """Append one entry per target, as :func:`record` would one by one; the entries
    share the actor, the time and the fields.

    A list page shows 50 cases, each recorded under its own reference so that
    the auditor finds every case that was read; appending them together
    costs one round trip instead of a hundred.
    """
    if not targets:
        return []
    current = session if session is not None else db.session()
    items = prepare_targets(_build(action, None, fields, outcome, actor), targets)
    if db.is_read_mode(current):
        current.info.setdefault(PENDING, []).extend(items)
        return []
    return append(current, items)


@dataclass(frozen=True, slots=True)
class Prepared:
    """An entry with everything that does not depend on its place in the chain computed:
    its stored column values from ``at_us`` to ``request_id`` (the row without seq and
    hashes) and the tail of its canonical encoding.

    An entry is validated once, when it is built; a batch of entries that share
    everything but the target (:func:`prepare_targets`) validates what they share
    once. Under the log's lock a batch then only chains and inserts.
    ``draft`` is the validated record the entry was built from (any seq; its
    target may be another one: the entry's own is ``values[6]``).
    """

    draft: AuditRecord
    values: tuple[Any, ...]
    body: bytes

    def record_at(self, seq: int) -> AuditRecord:
        """The entry's record at ``seq``, as its row stores it."""
        return derived(self.draft, seq, self.values[6])


def prepare(draft: AuditRecord | Prepared) -> Prepared:
    if isinstance(draft, Prepared):
        return draft
    return prepare_targets(draft, [draft.target])[0]


def prepare_targets(draft: AuditRecord, targets: Iterable[str | None]) -> list[Prepared]:
    """One prepared entry per target, each as ``draft`` about that target; what they share
    is encoded once, and each target checked as :class:`AuditRecord` would."""
    head = (
        to_micros(draft.at),
        draft.actor,
        draft.role,
        draft.office,
        draft.device,
        draft.action,
    )
    tail = (json.dumps(list(draft.fields)), draft.outcome, draft.request_id)
    before, after = body_parts(draft)
    return [
        Prepared(draft, (*head, target, *tail), before + target_bytes(target) + after)
        for target in targets
    ]


def append(
    session: Session,
    drafts: Sequence[AuditRecord | Prepared],
    *,
    integrate: bool = False,
    sign: bool = True,
) -> list[ChainedRecord]:
    """Seal ``drafts`` after the head and insert them, in ``session``'s transaction.

    Takes the log's lock (held to the end of the transaction), reads the head
    and the latest checkpoint, inserts every entry with one statement, then
    integrates the tiles (``integrate``) and signs a checkpoint when one is due.
    """
    items = [prepare(draft) for draft in drafts]
    rows = _append_rows(
        session.connection(), items, session if integrate else None, session if sign else None
    )
    return _chained(items, rows)


def _chained(items: Sequence[Prepared], rows: Sequence[EntryValues]) -> list[ChainedRecord]:
    return [
        ChainedRecord(item.record_at(row[0]), row[11], row[12])
        for item, row in zip(items, rows, strict=True)
    ]


EntryValues = tuple[Any, ...]
"""The column values of one entry, in the order of ``models.ENTRY_COLUMNS``."""


def _append_rows(
    connection: Connection,
    items: Sequence[Prepared],
    integrate: Session | None,
    sign: Session | Connection | None,
) -> list[EntryValues]:
    """Chain ``items`` after the head and insert them with one statement (raw tuples, no ORM),
    in ``connection``'s transaction; then integrate the tiles in ``integrate`` and sign a
    due checkpoint in ``sign`` (each None: not now)."""
    head = _read_head(connection)
    rows = seal(head[0] or 0, bytes(head[1]) if head[0] else GENESIS_HASH, items)
    if rows:
        insert_rows(connection, rows)
    seq = rows[-1][0] if rows else head[0] or 0
    if integrate is not None and rows:
        try:
            tree.integrate(integrate, seq, _chained(items, rows))
        except tree.LogIntegrityError as error:
            log.error("audit tiles not integrated: %s", error.reason, extra={"event": "audit"})
    if sign is not None and has_app_context():  # configuration and keys live in the application
        signer.checkpoint_if_due(sign, seq, head[2], head[3])
    return rows


def seal(head: int, prev: bytes, items: Iterable[Prepared]) -> list[EntryValues]:
    """The rows that store ``items`` chained after entry ``head`` (whose hash is ``prev``)."""
    rows: list[EntryValues] = []
    add = rows.append
    seq = head
    for item in items:
        seq += 1
        values = item.values
        digest = sha256(pack_head(ENCODING_VERSION, prev, seq, values[0]) + item.body).digest()
        add((seq, *values, prev, digest))
        prev = digest
    return rows


def insert_rows(connection: Connection, rows: Sequence[EntryValues]) -> None:
    """Insert sealed rows with one executemany (the caller holds the log's lock)."""
    if connection.dialect.name == "sqlite":
        db.on_cursor(connection, _insert_sql(connection), list(rows), many=True)
    else:
        connection.exec_driver_sql(_insert_sql(connection), list(rows))


_COLUMN_NAMES = ", ".join(column.key for column in ENTRY_COLUMNS)


def _insert_sql(connection: Connection) -> str:
    """The INSERT of one entry in the driver's own parameter style (sent with executemany)."""
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    markers = ", ".join([marker] * len(ENTRY_COLUMNS))
    return f"INSERT INTO audit_log ({_COLUMN_NAMES}) VALUES ({markers})"  # noqa: S608 (constants)


def rotate_signing_key(session: Session, actor: Actor | None = None) -> keys.KeyRecord:
    """Replace the log's signing key, recorded in the log and signed by both keys.

    Under the log's lock: append ``audit.key_rotate`` (seq r), sign the
    checkpoint of size r with the old and the new key, store the rotation
    statement; commit; then install the new key file. The new key is written
    to a ``.pending`` file first, so a crash between the commit and the
    install loses nothing: the signer promotes the pending key when the chain
    names it (see :func:`casework.audit.signer._key_in_force`).
    """
    origin = current_app.config["CASEWORK"]["audit_origin"]
    old = signer.current_signing_key()
    new = Ed25519PrivateKey.generate()
    holder = keys.key_file()
    keys.pending_file(holder).save(new)
    key_name = checkpoint.key_id(origin, new.public_key()).hex()
    draft = _build(AuditAction.AUDIT_KEY_ROTATE, f"key:{key_name}", (), Outcome.SUCCESS, actor)
    rotation = append(session, [draft], sign=False)[0]
    size = rotation.seq
    state = tree.integrate(session, size, [rotation])
    body = checkpoint.checkpoint_body(origin, size, state.root)
    note = keys.sign_both(old, new, origin, body)
    session.add(
        AuditCheckpoint(
            size=size,
            root=state.root,
            frontier=b"".join(state.peaks),
            note=note,
            signed_at_us=signer.now_micros(),
        )
    )
    record = keys.record_rotation(session, origin, size, old, new)
    session.commit()
    holder.save(new)
    keys.pending_file(holder).path.unlink(missing_ok=True)
    return record


def write_batch(drafts: Sequence[AuditRecord | Prepared]) -> None:
    """Write one group-commit batch in its own transaction (one lock, one commit).

    Four statements however many entries: BEGIN IMMEDIATE (SQLite) or the
    advisory lock with the head read (PostgreSQL, one round trip), the head
    (SQLite), one INSERT, the commit. The tiles are integrated when a
    checkpoint is signed (every ``audit_checkpoint_seconds`` while entries
    arrive), covering every batch since: rewriting the right-edge tiles on
    every batch would multiply the bytes each fsync writes for nothing a
    proof needs before the next checkpoint.

    A Core connection's transaction, not a session's: the ORM's unit of work has
    nothing to do here and cost more than the statements (a session is joined to
    the transaction only when a checkpoint is due).
    """
    with batch_transaction() as write:
        write(drafts)


@contextmanager
def batch_transaction() -> Iterator[Callable[[Sequence[AuditRecord | Prepared]], None]]:
    """The transaction of one group-commit batch, begun (the log's lock taken) on entry and
    committed on exit; yields the function that writes the batch in it (once).

    The group commit takes its batch only once the lock is held (see
    :class:`casework.audit.appender.GroupCommit`): on SQLite the other worker's batch holds
    the lock through its fsync, and the entries that arrive meanwhile join this batch.
    """
    written: list[EntryValues] = []

    def write_in(connection: Connection) -> Callable[[Sequence[AuditRecord | Prepared]], None]:
        def write(drafts: Sequence[AuditRecord | Prepared]) -> None:
            items = [prepare(draft) for draft in drafts]
            written.extend(_append_rows(connection, items, None, connection))

        return write

    bind = _sessions_bind()
    if isinstance(bind, Connection):  # sessions share one connection: a savepoint in it
        with bind.begin_nested() if bind.in_transaction() else bind.begin():
            yield write_in(bind)
    else:
        with bind.begin() as connection:  # commits, or rolls back and raises
            yield write_in(connection)
    links = signer.written_links()
    if links is not None:
        links.add(written)


def _sessions_bind() -> Engine | Connection:
    """Where the application's sessions write: its engine, or the one connection that a
    test (or a tool) binds every session to, in a transaction of its own."""
    factory = db.get_db().session_factory
    bind = factory.kw.get("bind") if isinstance(factory, sessionmaker) else factory().bind
    if not isinstance(bind, Engine | Connection):
        raise RuntimeError("the application's sessions are not bound to a database")
    return bind


def group_commit(app: Flask | None = None) -> GroupCommit[AuditRecord | Prepared]:
    """The application's group committer (one per process and application)."""
    extensions = (app or current_app).extensions
    committer: GroupCommit[AuditRecord | Prepared] = extensions["casework.audit.appender"]
    return committer


def _write_pending_in_transaction(session: Session) -> None:
    """Before commit: a request that changed something keeps its entries in its transaction."""
    drafts = session.info.get(PENDING)
    if drafts and not db.is_read_mode(session):
        session.info[PENDING] = []
        append(session, drafts)


def _append_pending(session: Session) -> None:
    """After commit: a read request's entries, by group commit, before the response leaves."""
    drafts = session.info.pop(PENDING, None)
    if drafts:
        group_commit().append([prepare(draft) for draft in drafts])


def flush_pending(session: Session | None = None) -> None:
    """Make this request's deferred entries durable now (a route that reads its own entry)."""
    current = session if session is not None else db.session()
    drafts = current.info.pop(PENDING, None)
    if not drafts:
        return
    if db.is_read_mode(current):
        group_commit().append([prepare(draft) for draft in drafts])
    else:
        append(current, drafts)


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


_HEAD_SQL = (
    "SELECT (SELECT seq FROM audit_log ORDER BY seq DESC LIMIT 1),"
    " (SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1),"
    " (SELECT size FROM audit_checkpoints ORDER BY size DESC LIMIT 1),"
    " (SELECT signed_at_us FROM audit_checkpoints ORDER BY size DESC LIMIT 1)"
)
# PostgreSQL: the lock and the head in one round trip. Two statements in one simple
# query: in READ COMMITTED each takes its own snapshot, so the head is read after the
# lock is held and sees every batch committed before it.
_PG_LOCK_AND_HEAD = f"SELECT pg_advisory_xact_lock({AUDIT_LOCK_KEY}); {_HEAD_SQL}"


def _read_head(connection: Connection) -> tuple[Any, ...]:
    """Take the append lock, then read the head (seq, hash) and the latest checkpoint
    (size, signing time); each None when there is none."""
    if connection.dialect.name != "postgresql":  # SQLite: BEGIN IMMEDIATE holds the lock
        return tuple(db.on_cursor(connection, _HEAD_SQL))
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(_PG_LOCK_AND_HEAD)  # no parameters: the simple query protocol
        if cursor.description is None or len(cursor.description) != 4:
            cursor.nextset()
        head: Any = cursor.fetchone()
    finally:
        cursor.close()
    return tuple(head)


def record_refusal(principal: Any) -> None:
    """Denial hook: drop the request's pending changes, keep one ``authz.denied``."""
    current = db.session()
    current.rollback()
    current.info.pop(PENDING, None)  # entries of the refused work go with it
    target = (request.view_args or {}).get("reference") if has_request_context() else None
    record(AuditAction.AUTHZ_DENIED, target=target, outcome=Outcome.DENIED)
    db.persist_despite_error()


def _refuse_change(_mapper: Mapper[Any], _connection: Any, _target: object) -> None:
    raise RuntimeError("access-log entries are append-only")


def _guard_append_only() -> None:
    """Refuse, in the ORM, any change or deletion of an entry or a checkpoint (the
    database's triggers refuse it below). Mapper events are process-wide: added once."""
    for model in (AuditEntry, AuditCheckpoint):
        for name in ("before_update", "before_delete"):
            if not event.contains(model, name, _refuse_change):
                event.listen(model, name, _refuse_change)


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
    refuse an origin that cannot name the key; append read requests' entries by group
    commit before their response leaves."""
    signer.check_origin(app)
    keys.init_app(app)
    _guard_append_only()
    settings = app.config["CASEWORK"]
    app.extensions[signer.WRITTEN_LINKS] = tree.WrittenLinks()
    app.extensions["casework.audit.appender"] = GroupCommit(
        begin=batch_transaction,
        batch_size=int(settings["audit_batch_size"]),
        max_wait=int(settings["audit_batch_max_wait_ms"]) / 1000,
    )
    app.extensions.setdefault("casework.denial_hooks", []).append(record_refusal)
    app.extensions.setdefault("casework.integrity_hooks", []).append(record_integrity_failure)
    app.extensions.setdefault("casework.before_commit_hooks", []).append(
        _write_pending_in_transaction
    )
    app.extensions.setdefault("casework.after_commit_hooks", []).append(_append_pending)
