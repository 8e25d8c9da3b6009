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

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from casework.audit import tiles
from casework.audit.encoding import (
    GENESIS_HASH,
    HASH_SIZE,
    ChainedRecord,
    entry_hash,
    stored_row_hash,
)
from casework.audit.merkle import CompactRange
from casework.audit.models import (
    ENTRY_COLUMNS,
    AuditEntry,
    AuditTile,
    AuditTree,
    EntryRow,
    chained_from_row,
)

_TREE_ID = 1
_LEAF = b"\x00"  # RFC 6962's leaf prefix (merkle.leaf_hash, inline)
_READ_BATCH = 20_000


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


class WrittenLinks:
    """The links (seq, prev_hash, hash) of entries this process sealed and committed,
    kept until they are integrated, so that a checkpoint need not read them back.

    Only what this process computed and saw committed is kept (group-commit
    batches, added after their commit), never bytes read from the database:
    entries other processes or transactions wrote are still read and checked.
    A checkpoint then vouches for what this process wrote; a row changed in
    the database since no longer matches a signed root, which the verifier
    names like any altered row. Links are still checked, so a batch chained
    to an altered head is refused as before.
    """

    def __init__(self, limit: int = 200_000) -> None:
        self._limit = limit
        self._links: dict[int, tuple[bytes, bytes]] = {}  # in seq order
        self._last = 0
        self._lock = threading.Lock()

    def add(self, rows: Iterable[Sequence[Any]]) -> None:
        """Keep committed rows (columns as ``ENTRY_COLUMNS``), in seq order."""
        with self._lock:
            links = self._links
            for row in rows:
                if row[0] <= self._last:  # the log went back (a restored database)
                    links.clear()
                links[row[0]] = (row[11], row[12])
                self._last = row[0]
            while len(links) > self._limit:  # the oldest go; they would be read back
                del links[next(iter(links))]

    def take(self, after: int, upto: int) -> dict[int, tuple[bytes, bytes]]:
        """The kept links of seq ``after``+1..``upto``; forget every link up to ``upto``."""
        with self._lock:
            links = self._links
            if links and next(reversed(links)) <= upto:  # all of them (a checkpoint's case)
                taken = {seq: link for seq, link in links.items() if seq > after}
                links.clear()
                return taken
            taken = {}
            while links:
                seq = next(iter(links))
                if seq > upto:
                    break
                link = links.pop(seq)
                if seq > after:
                    taken[seq] = link
            return taken


def integrate(
    session: Session,
    upto: int,
    written: Sequence[ChainedRecord] = (),
    known: WrittenLinks | None = None,
) -> TreeState:
    """Extend the tiles to ``upto`` entries; the caller holds the log's lock.

    ``written`` are entries this transaction has just sealed (consecutive, the
    last of them being ``upto``): they need not be read back, nor need the
    entries ``known`` holds (committed earlier by this process). Raises
    :class:`LogIntegrityError` at the first entry that does not verify.
    """
    current = state(session)
    if current.size >= upto:
        return current
    first_written = written[0].seq if written else upto + 1
    hashes: list[bytes] = []
    prev = current.last_hash
    expected = current.size + 1
    before_written = min(upto, first_written - 1)
    kept = known.take(current.size, before_written) if known is not None else {}
    if kept and not _still_stored(session, kept):
        kept = {}
    add = hashes.append
    stored: Iterable[tuple[int, bytes, bytes, bool]]
    if len(kept) == before_written - current.size:  # every link kept, in seq order
        for seq, (prev_hash, digest) in kept.items():
            if seq != expected or prev_hash != prev:
                _check_link(seq, prev_hash, True, expected, prev)  # names the fault
            prev = digest
            add(prev)
            expected += 1
        stored = ()
    else:
        stored = _links(session, current.size, before_written, kept)
    for seq, prev_hash, digest, matches in stored:
        if seq != expected or prev_hash != prev or not matches:
            _check_link(seq, prev_hash, matches, expected, prev)  # names the fault
        prev = digest
        add(prev)
        expected += 1
    for entry in written:
        if entry.seq < expected:
            continue
        _check_link(entry.seq, entry.prev_hash, True, expected, prev)
        prev = entry.hash
        add(prev)
        expected += 1
    if expected != upto + 1:
        raise LogIntegrityError(expected, f"seq {expected} is missing")
    edge = read_tiles(session, tiles.edge_keys(current.size))
    inner: dict[tiles.TileKey, bytes] = {}
    leaves = [sha256(_LEAF + data).digest() for data in hashes]  # each leaf hashed once
    size, changed = tiles.integrate_leaf_hashes(current.size, edge, leaves, inner)
    compact = CompactRange(current.size, current.peaks)
    compact.extend_leaf_hashes(leaves)
    _upsert_tiles(session, changed, inner)
    new = TreeState(size, compact.root(), compact.peaks, prev)
    _save(session, new, exists=current is not EMPTY)
    return new


def _check_link(seq: int, prev_hash: bytes, matches: bool, expected: int, prev: bytes) -> None:
    if seq != expected:
        raise LogIntegrityError(expected, f"seq {expected} is missing")
    if prev_hash != prev:
        raise LogIntegrityError(expected, f"seq {expected} does not link to seq {expected - 1}")
    if not matches:
        raise LogIntegrityError(expected, f"seq {expected} does not match its hash")


def _still_stored(session: Session, kept: dict[int, tuple[bytes, bytes]]) -> bool:
    """Whether the database still holds the last kept entry as this process wrote it.

    Kept links of a database since restored, or of a transaction rolled back
    around the batch's (tests), do not match: then every one is read back.
    """
    last = next(reversed(kept))
    stored = session.connection().execute(_HASH_AT, {"seq": last}).scalar()
    return stored is not None and bytes(stored) == kept[last][1]


_HASH_AT = select(AuditEntry.hash).where(AuditEntry.seq == bindparam("seq"))


def _links(
    session: Session, after: int, upto: int, kept: Mapping[int, tuple[bytes, bytes]]
) -> Iterator[tuple[int, bytes, bytes, bool]]:
    """Entries ``after``+1..``upto`` as (seq, prev_hash, hash, hash matches content): from
    ``kept`` (see :class:`WrittenLinks`) where it has them, else read from the database and
    hashed from raw rows in large pages; a row that is not a valid entry raises."""
    connection = session.connection()
    while after < upto:
        link = kept.get(after + 1)
        if link is not None:
            after += 1
            yield after, link[0], link[1], True
            continue
        end = after + 1  # read up to the next kept entry
        while end < upto and end - after < _READ_BATCH and end + 1 not in kept:
            end += 1
        rows: Sequence[Any] = connection.execute(
            _ROWS.where(AuditEntry.seq > after, AuditEntry.seq <= end).order_by(AuditEntry.seq)
        ).all()
        if not rows:
            return
        for row in rows:
            digest = stored_row_hash(row)
            if digest is None:
                try:
                    entry = chained_from_row(EntryRow(*row))
                except (TypeError, ValueError):
                    raise LogIntegrityError(row[0], f"seq {row[0]} is not a valid entry") from None
                yield (
                    entry.seq,
                    entry.prev_hash,
                    entry.hash,
                    entry_hash(entry.prev_hash, entry.record) == entry.hash,
                )
            else:
                yield row[0], row[11], row[12], digest == row[12]
        after = rows[-1][0]


_ROWS = select(*(column.expression for column in ENTRY_COLUMNS))


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


def _upsert_tiles(
    session: Session, changed: Mapping[tiles.TileKey, bytes], inner: Mapping[tiles.TileKey, bytes]
) -> None:
    if not changed:
        return
    rows = [
        {"level": lvl, "idx": idx, "hashes": data, "inner_nodes": inner.get((lvl, idx))}
        for (lvl, idx), data in changed.items()
    ]
    dialect = session.get_bind().dialect.name
    upsert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = upsert(AuditTile)
    statement = statement.on_conflict_do_update(
        index_elements=[AuditTile.level, AuditTile.idx],
        set_={
            "hashes": statement.excluded.hashes,
            "inner_nodes": statement.excluded.inner_nodes,
        },
    )
    session.execute(statement, rows)


def _where_keys(keys: Iterable[tiles.TileKey]) -> ColumnElement[bool] | None:
    wanted = sorted(set(keys))
    if not wanted:
        return None
    return or_(*(and_(AuditTile.level == lvl, AuditTile.idx == idx) for lvl, idx in wanted))


def read_tiles(session: Session, keys: Iterable[tiles.TileKey]) -> dict[tiles.TileKey, bytes]:
    """The stored tiles named by ``keys``, in one query (missing ones left out)."""
    condition = _where_keys(keys)
    if condition is None:
        return {}
    rows = session.execute(
        select(AuditTile.level, AuditTile.idx, AuditTile.hashes).where(condition)
    )
    return {(row.level, row.idx): bytes(row.hashes) for row in rows}


def read_tiles_for_proof(
    session: Session, keys: Iterable[tiles.TileKey]
) -> tuple[dict[tiles.TileKey, bytes], dict[tiles.TileKey, bytes | None]]:
    """The tiles named by ``keys`` and their stored inner nodes, in one query.

    Plain SQL over integer keys: building the expression for every proof cost
    more than the query.
    """
    wanted = sorted(set(keys))
    if not wanted:
        return {}, {}
    condition = " OR ".join(f"(level = {int(lvl)} AND idx = {int(idx)})" for lvl, idx in wanted)
    rows = session.connection().exec_driver_sql(_TILES_SQL + condition).all()
    return (
        {(row[0], row[1]): bytes(row[2]) for row in rows},
        {(row[0], row[1]): None if row[3] is None else bytes(row[3]) for row in rows},
    )


_TILES_SQL = "SELECT level, idx, hashes, inner_nodes FROM audit_tiles WHERE "


def read_tile(session: Session, level: int, index: int) -> bytes | None:
    data = session.scalar(
        select(AuditTile.hashes).where(AuditTile.level == level, AuditTile.idx == index)
    )
    return None if data is None else bytes(data)


def _roots(session: Session, ranges: list[tuple[int, int]]) -> list[bytes]:
    stored, inner = read_tiles_for_proof(session, tiles.tiles_for(ranges))
    try:
        return [tiles.range_root(stored, low, high, inner) for low, high in ranges]
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
