"""The stored Merkle tree: integrating entries into tiles, and proofs read from tiles.

Integration runs in the transaction that appends (a group-commit batch, or a
transaction that signs a checkpoint), under the log's lock, so two
integrations never race. It extends the tree from the stored size to the head:
the entries it has not just written itself are read and checked (sequence,
link and hash) first, so the tiles, and the checkpoints signed over them,
never vouch for a chain that does not hold. A batch of n entries costs one
read of the tree row, one read of the (at most a few) right-edge tiles, and
one upsert per changed tile.

Proofs read only the tiles they need, in one query: an inclusion or
consistency proof at a million entries reads about six rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from casework.audit import tiles
from casework.audit.encoding import GENESIS_HASH, HASH_SIZE, ChainedRecord, entry_hash
from casework.audit.merkle import CompactRange
from casework.audit.models import ENTRY_COLUMNS, AuditEntry, AuditTile, AuditTree, chained_from_row

_TREE_ID = 1
_READ_BATCH = 2000


class LogIntegrityError(Exception):
    """The stored log does not verify where the tree would cover it: not integrated.

    ``seq`` is the first entry that failed; the message names it and the rule
    broken, never an entry's content.
    """

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(reason)
        self.seq = seq
        self.reason = reason


@dataclass(frozen=True)
class TreeState:
    size: int
    root: bytes
    peaks: tuple[bytes, ...]
    last_hash: bytes


EMPTY = TreeState(0, CompactRange().root(), (), GENESIS_HASH)


def state(session: Session) -> TreeState:
    """The integrated size, root, peaks and last entry hash."""
    row = session.execute(
        select(AuditTree.size, AuditTree.root, AuditTree.frontier, AuditTree.last_hash).where(
            AuditTree.id == _TREE_ID
        )
    ).first()
    if row is None:
        return EMPTY
    frontier = bytes(row.frontier)
    peaks = tuple(frontier[i : i + HASH_SIZE] for i in range(0, len(frontier), HASH_SIZE))
    return TreeState(row.size, bytes(row.root), peaks, bytes(row.last_hash))


def integrate(session: Session, upto: int, written: Sequence[ChainedRecord] = ()) -> TreeState:
    """Extend the tiles to ``upto`` entries; the caller holds the log's lock.

    ``written`` are entries this transaction has just sealed (consecutive, the
    last of them being ``upto``): they need not be read back. Raises
    :class:`LogIntegrityError` at the first entry that does not verify.
    """
    current = state(session)
    if current.size >= upto:
        return current
    first_written = written[0].seq if written else upto + 1
    hashes: list[bytes] = []
    prev = current.last_hash
    expected = current.size + 1
    for entry in _entries(session, current.size, min(upto, first_written - 1)):
        _check(entry, expected, prev, recompute=True)
        prev = entry.hash
        hashes.append(prev)
        expected += 1
    for entry in written:
        if entry.seq < expected:
            continue
        _check(entry, expected, prev, recompute=False)
        prev = entry.hash
        hashes.append(prev)
        expected += 1
    if expected != upto + 1:
        raise LogIntegrityError(expected, f"seq {expected} is missing")
    edge = read_tiles(session, tiles.edge_keys(current.size))
    size, changed = tiles.integrate(current.size, edge, hashes)
    compact = CompactRange(current.size, current.peaks)
    for data in hashes:
        compact.append(data)
    _upsert_tiles(session, changed)
    new = TreeState(size, compact.root(), compact.peaks, prev)
    _save(session, new, exists=current is not EMPTY)
    return new


def _check(entry: ChainedRecord, expected: int, prev: bytes, *, recompute: bool) -> None:
    if entry.seq != expected:
        raise LogIntegrityError(expected, f"seq {expected} is missing")
    if entry.prev_hash != prev:
        raise LogIntegrityError(expected, f"seq {expected} does not link to seq {expected - 1}")
    if recompute and entry_hash(prev, entry.record) != entry.hash:
        raise LogIntegrityError(expected, f"seq {expected} does not match its hash")


def _entries(session: Session, after: int, upto: int) -> Iterable[ChainedRecord]:
    while after < upto:
        rows = session.execute(
            select(*ENTRY_COLUMNS)
            .where(AuditEntry.seq > after, AuditEntry.seq <= upto)
            .order_by(AuditEntry.seq)
            .limit(_READ_BATCH)
        ).all()
        if not rows:
            return
        for row in rows:
            try:
                yield chained_from_row(row)
            except (TypeError, ValueError):
                raise LogIntegrityError(row.seq, f"seq {row.seq} is not a valid entry") from None
        after = rows[-1].seq


def _save(session: Session, new: TreeState, *, exists: bool) -> None:
    values = {
        "size": new.size,
        "root": new.root,
        "frontier": b"".join(new.peaks),
        "last_hash": new.last_hash,
    }
    if exists:
        session.execute(
            update(AuditTree)
            .where(AuditTree.id == _TREE_ID)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    else:
        session.execute(insert(AuditTree).values(id=_TREE_ID, **values))


def _upsert_tiles(session: Session, changed: Mapping[tiles.TileKey, bytes]) -> None:
    if not changed:
        return
    rows = [{"level": lvl, "idx": idx, "hashes": data} for (lvl, idx), data in changed.items()]
    dialect = session.get_bind().dialect.name
    upsert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = upsert(AuditTile)
    statement = statement.on_conflict_do_update(
        index_elements=[AuditTile.level, AuditTile.idx],
        set_={"hashes": statement.excluded.hashes},
    )
    session.execute(statement, rows)


def read_tiles(session: Session, keys: Iterable[tiles.TileKey]) -> dict[tiles.TileKey, bytes]:
    """The stored tiles named by ``keys``, in one query (missing ones left out)."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    condition = or_(*(and_(AuditTile.level == lvl, AuditTile.idx == idx) for lvl, idx in wanted))
    rows = session.execute(
        select(AuditTile.level, AuditTile.idx, AuditTile.hashes).where(condition)
    )
    return {(row.level, row.idx): bytes(row.hashes) for row in rows}


def read_tile(session: Session, level: int, index: int) -> bytes | None:
    data = session.scalar(
        select(AuditTile.hashes).where(AuditTile.level == level, AuditTile.idx == index)
    )
    return None if data is None else bytes(data)


def _roots(session: Session, ranges: list[tuple[int, int]]) -> list[bytes]:
    stored = read_tiles(session, tiles.tiles_for(ranges))
    try:
        return [tiles.range_root(stored, low, high) for low, high in ranges]
    except (KeyError, ValueError) as error:
        raise LogIntegrityError(0, f"the stored tiles do not cover the tree: {error}") from None


def inclusion_path(session: Session, index: int, size: int) -> list[bytes]:
    """The RFC 6962 audit path of leaf ``index`` in the tree of ``size`` (integrated) leaves."""
    return _roots(session, tiles.proof_ranges_inclusion(index, size))


def consistency_path(session: Session, old_size: int, size: int) -> list[bytes]:
    """The RFC 6962 consistency proof from ``old_size`` to ``size`` (integrated) leaves."""
    return _roots(session, tiles.proof_ranges_consistency(old_size, size))


def root_at(session: Session, size: int) -> bytes:
    """The tree's root at ``size`` (integrated) leaves, from tiles."""
    return _roots(session, [(0, size)])[0] if size else CompactRange().root()
