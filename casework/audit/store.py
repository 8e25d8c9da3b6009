"""Reading the stored log: the auditor's queries, the export, verification, proofs.

Long reads (export, verification, proofs) go page by page through a *reader*,
bounded by the log size read at the start, so memory stays flat however long
the log. Entries and checkpoints are immutable and only ever appended, so pages
read in different transactions still make one consistent log. Two readers:

* :func:`in_session` reads in the caller's transaction (a read request's
  snapshot).
* :func:`in_short_sessions` opens one short session per page (given
  ``db.read_only_session``: no write lock on SQLite). The export stream uses
  it after the request has committed, and the CLI uses it, so that no
  transaction stays open for the length of a download or a verification.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, bindparam, func, select
from sqlalchemy.orm import Session

from casework.audit import tiles, tree, witnesses
from casework.audit.encoding import HASH_SIZE, ChainedRecord
from casework.audit.export import checkpoint_line, entry_line, format_time
from casework.audit.models import (
    ENTRY_COLUMNS,
    AuditCheckpoint,
    AuditEntry,
    from_micros,
    link_of_row,
    stored_entry,
    to_micros,
)
from casework.audit.signer import LogIdentity, latest_checkpoint
from casework.audit.verify import KeyInForce, Link, VerifyResult, verify_links
from casework.errors import NotFound, ValidationFailed
from casework.pagination import decode_cursor, encode_cursor, page_size

MAX_SEQ = 2**63 - 1
SessionFactory = Callable[[], Session]
AnySelect = Select[*tuple[Any, ...]]
Reader = Callable[[AnySelect], Sequence[Row[Any]]]
PAGE = 2000
LINK_PAGE = 20_000


def in_session(session: Session) -> Reader:
    """Read every page in ``session``'s current transaction."""
    return lambda query: session.connection().execute(query).all()


def in_short_sessions(open_session: SessionFactory) -> Reader:
    """Read each page in a new session, closed (and its transaction ended) at once."""

    def read(query: AnySelect) -> Sequence[Row[Any]]:
        with open_session() as session:
            # On the connection: the pages select columns, not objects, so the ORM
            # layer would only cost time per row (a verification reads millions).
            return session.connection().execute(query).all()

    return read


def head_seq(session: Session) -> int:
    """The number of entries (the last seq; 0 for an empty log)."""
    return session.scalar(select(func.max(AuditEntry.seq))) or 0


# --- The auditor's event list. ---

_EQUALITY_FILTERS = {
    "actor": AuditEntry.actor,
    "target": AuditEntry.target,
    "action": AuditEntry.action,
    "outcome": AuditEntry.outcome,
}


def list_events(
    session: Session, filters: dict[str, Any], limit: int | None, cursor: str | None
) -> tuple[list[ChainedRecord], str | None]:
    """One page of entries matching ``filters``, oldest first, and the next cursor.

    ``filters`` holds any of actor, target, action, outcome (equality) and
    since (inclusive) / until (exclusive) as aware datetimes. The first page
    fixes the log size and the cursor keeps it: each page read appends an
    ``audit.read`` entry, which the pages must not chase.
    """
    size = page_size(limit)
    after, upto = _cursor_position(cursor) if cursor else (0, head_seq(session))
    query = select(*ENTRY_COLUMNS).where(
        *_conditions(filters), AuditEntry.seq > after, AuditEntry.seq <= upto
    )
    rows = session.execute(query.order_by(AuditEntry.seq).limit(size + 1)).all()
    entries = [stored_entry(row) for row in rows[:size]]
    if len(rows) <= size:
        return entries, None
    return entries, encode_cursor({"after": entries[-1].seq, "upto": upto})


def _conditions(filters: dict[str, Any]) -> list[ColumnElement[bool]]:
    conditions = [
        column == filters[name] for name, column in _EQUALITY_FILTERS.items() if name in filters
    ]
    since: datetime | None = filters.get("since")
    until: datetime | None = filters.get("until")
    if since is not None:
        conditions.append(AuditEntry.at_us >= to_micros(since))
    if until is not None:
        conditions.append(AuditEntry.at_us < to_micros(until))
    return conditions


def _cursor_position(cursor: str) -> tuple[int, int]:
    position = decode_cursor(cursor)
    after, upto = position.get("after"), position.get("upto")
    if type(after) is not int or type(upto) is not int or not 0 <= after <= upto <= MAX_SEQ:
        raise ValidationFailed(errors={"query": {"cursor": ["Not a valid cursor."]}})
    return after, upto


# --- Streaming the whole log. ---


def iter_entries(
    read: Reader, upto: int, page: int = PAGE, after: int = 0
) -> Iterator[ChainedRecord]:
    """Entries with seq ``after``+1..``upto`` in order, a page at a time."""
    yield from _paged(read, select(*ENTRY_COLUMNS), upto, page, stored_entry, after)


def iter_entry_links(
    read: Reader, upto: int, after: int = 0, page: int = LINK_PAGE
) -> Iterator[Link]:
    """The verifier's links (see :func:`~casework.audit.models.link_of_row`) of entries
    ``after``+1..``upto``, in order, in large pages of raw rows: no record per entry."""
    yield from _paged(read, select(*ENTRY_COLUMNS), upto, page, link_of_row, after)


def iter_entry_hashes(read: Reader, upto: int, page: int = PAGE * 4) -> Iterator[bytes]:
    """The entry hashes (the Merkle leaves) with seq 1..``upto``, in order."""
    query = select(AuditEntry.seq, AuditEntry.hash)
    yield from _paged(read, query, upto, page, lambda row: bytes(row.hash))


def _paged(
    read: Reader,
    query: AnySelect,
    upto: int,
    page: int,
    convert: Callable[[Any], Any],
    after: int = 0,
) -> Iterator[Any]:
    while after < upto:
        rows = read(
            query.where(AuditEntry.seq > after, AuditEntry.seq <= upto)
            .order_by(AuditEntry.seq)
            .limit(page)
        )
        if not rows:
            return
        yield from map(convert, rows)
        after = rows[-1][0]  # seq, the first column of every paged query


def checkpoint_notes(session: Session, upto: int | None = None) -> list[tuple[int, str]]:
    """Every stored checkpoint (size, note), smallest first; they are few (one per N entries)."""
    query = select(AuditCheckpoint.size, AuditCheckpoint.note).order_by(AuditCheckpoint.size)
    if upto is not None:
        query = query.where(AuditCheckpoint.size <= upto)
    return [(row.size, row.note) for row in session.execute(query)]


def export_lines(read: Reader, upto: int, notes: list[tuple[int, str]]) -> Iterator[str]:
    """The export of entries 1..``upto``, each checkpoint right after the entry it ends at.

    ``notes`` are (size, note) pairs, smallest first, read in the transaction
    that fixed ``upto``.
    """
    pending = iter(notes)
    waiting = next(pending, None)
    while waiting is not None and waiting[0] == 0:
        yield checkpoint_line(waiting[1])
        waiting = next(pending, None)
    for entry in iter_entries(read, upto):
        yield entry_line(entry)
        while waiting is not None and waiting[0] <= entry.seq:
            yield checkpoint_line(waiting[1])
            waiting = next(pending, None)
    while waiting is not None:  # larger than the log: evidence of a rollback, kept
        yield checkpoint_line(waiting[1])
        waiting = next(pending, None)


@dataclass(frozen=True)
class LogState:
    """The log size and every stored checkpoint (size, note), read in one transaction."""

    size: int
    notes: list[tuple[int, str]]


def log_state(session: Session) -> LogState:
    return LogState(head_seq(session), checkpoint_notes(session))


def verify_stored(
    state: LogState,
    read: Reader,
    identity: LogIdentity,
    pinned: Iterable[str] = (),
    keys: Sequence[KeyInForce] | None = None,
) -> VerifyResult:
    """Verify the stored log against its stored checkpoints and any ``pinned`` notes.

    Stored checkpoints larger than the log (a truncated table) are kept on
    purpose: they are how a rollback is seen.
    """
    result, _end = verify_links(
        iter_entry_links(read, state.size),
        [*pinned, *(note for _, note in state.notes)],
        identity.public_key,
        identity.key_name,
        identity.origin,
        keys,
    )
    return result


# --- Checkpoints and inclusion proofs. ---


def checkpoint_document(session: Session, checkpoint: AuditCheckpoint) -> dict[str, Any]:
    """The checkpoint as served: its note with every cosignature line appended."""
    cosigned = witnesses.cosignatures(session, checkpoint.size)
    return {
        "size": checkpoint.size,
        "root": bytes(checkpoint.root).hex(),
        "signed_at": format_time(from_micros(checkpoint.signed_at_us)),
        "note": checkpoint.note + "".join(f"{c.line}\n" for c in cosigned),
        "cosignatures": [{"name": c.name, "time": c.time} for c in cosigned],
    }


def latest_checkpoint_or_404(session: Session) -> AuditCheckpoint:
    checkpoint = latest_checkpoint(session)
    if checkpoint is None:
        raise NotFound("No checkpoint has been signed yet.")
    return checkpoint


@dataclass(frozen=True)
class InclusionProof:
    entry: ChainedRecord
    tree_size: int
    path: list[bytes]
    note: str


def inclusion_proof(session: Session, seq: int) -> InclusionProof:
    """The audit path from entry ``seq`` to the latest signed checkpoint, read from tiles.

    Reads in ``session``'s transaction: the entry, the latest checkpoint and
    the few tiles the path needs (O(log n) rows). Raises :class:`NotFound`
    when there is no such entry or no checkpoint covers it yet (one is signed
    every ``audit_checkpoint_seconds`` while entries arrive, or on demand).
    """
    if not 1 <= seq <= MAX_SEQ:  # a BIGINT would overflow in the query
        raise NotFound("No entry with this sequence number.")
    connection = session.connection()
    row = connection.execute(_ENTRY_BY_SEQ, {"seq": seq}).first()
    if row is None:
        raise NotFound("No entry with this sequence number.")
    checkpoint = connection.execute(_LATEST_CHECKPOINT).first()
    if checkpoint is None or checkpoint.size < seq:
        raise NotFound(
            "No signed checkpoint covers this entry yet; "
            "sign one with POST /api/v1/audit/checkpoints."
        )
    size = checkpoint.size
    path = _from_tiles(session, lambda: tree.inclusion_path(session, seq - 1, size))
    return InclusionProof(stored_entry(row), size, path, checkpoint.note)


# Built once: a proof is a few cheap queries, and building them cost as much.
_ENTRY_BY_SEQ = select(*ENTRY_COLUMNS).where(AuditEntry.seq == bindparam("seq"))
_LATEST_CHECKPOINT = (
    select(AuditCheckpoint.size, AuditCheckpoint.note)
    .order_by(AuditCheckpoint.size.desc())
    .limit(1)
)


def _from_tiles(session: Session, compute: Callable[[], list[bytes]]) -> list[bytes]:
    """A proof from tiles; a log whose tiles stop short (not integrated) answers 404."""
    try:
        return compute()
    except tree.LogIntegrityError:
        raise NotFound("The tiles do not cover this tree size yet.") from None


def consistency_proof(session: Session, old_size: int, new_size: int) -> list[bytes]:
    """The RFC 6962 consistency proof between tree sizes ``old_size`` and ``new_size``.

    Both must be at most the latest signed checkpoint's size (the sizes a
    verifier holds checkpoints of). Reads O(log n) tiles.
    """
    if not 0 <= old_size <= new_size <= MAX_SEQ:
        raise ValidationFailed(errors={"query": {"from": ["Must be between 0 and to."]}})
    checkpoint = session.connection().execute(_LATEST_CHECKPOINT).first()
    if checkpoint is None or checkpoint.size < new_size:
        raise NotFound("No signed checkpoint covers this tree size yet.")
    return _from_tiles(session, lambda: tree.consistency_path(session, old_size, new_size))


def tile_hashes(session: Session, level: int, index: int, width: int) -> bytes:
    """The first ``width`` hashes of hash tile (``level``, ``index``), or NotFound."""
    if not 0 <= level <= tiles.MAX_LEVEL or not 0 <= index <= MAX_SEQ:
        raise NotFound("No such tile.")
    data = tree.read_tile(session, level, index)
    if data is None or len(data) < width * HASH_SIZE:
        raise NotFound("No such tile.")
    return data[: width * HASH_SIZE]
