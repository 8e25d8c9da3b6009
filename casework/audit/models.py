"""The access log tables: append-only, hash-chained, no personal data.

``audit_log`` holds the entries; ``audit_checkpoints`` the signed checkpoints
over them (see :mod:`casework.audit.signer`). Both refuse UPDATE and DELETE:
through the ORM here, and in the database through triggers (migrations 0002
and 0006).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import BigInteger, Boolean, Integer, LargeBinary, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from casework.audit.encoding import (
    HASH_SIZE,
    AuditRecord,
    ChainedRecord,
    entry_hash,
    stored_row_hash,
)
from casework.db import Base

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


class AuditEntry(Base):
    """One access: who, in which role and office, did what to which reference.

    Time is stored as integer microseconds so the value hashed is the value
    kept, on every backend. Field *names* only; values never enter this table.
    """

    __tablename__ = "audit_log"

    # On SQLite the rowid itself (INTEGER PRIMARY KEY, 64-bit as BIGINT is): one B-tree
    # keyed by seq, where a BIGINT key is a second B-tree every append updates (0023).
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=False,
        comment="Gapless, from 1.",
    )
    at_us: Mapped[int] = mapped_column(
        BigInteger, index=True, comment="UTC time in microseconds since the Unix epoch."
    )
    actor: Mapped[str | None] = mapped_column(String(64), index=True, comment="User id.")
    role: Mapped[str | None] = mapped_column(String(32))
    office: Mapped[str | None] = mapped_column(String(32))
    device: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(
        String(64), index=True, comment="Random case reference or other id; never a name."
    )
    fields: Mapped[str] = mapped_column(Text, comment="JSON list of field names touched.")
    outcome: Mapped[str] = mapped_column(String(16), index=True)
    request_id: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))

    @classmethod
    def from_chained(cls, chained: ChainedRecord) -> AuditEntry:
        return cls(**cls.values_of(chained))

    @staticmethod
    def values_of(chained: ChainedRecord) -> dict[str, Any]:
        """The column values that store ``chained``."""
        r = chained.record
        return {
            "seq": r.seq,
            "at_us": to_micros(r.at),
            "actor": r.actor,
            "role": r.role,
            "office": r.office,
            "device": r.device,
            "action": r.action,
            "target": r.target,
            "fields": json.dumps(list(r.fields)),
            "outcome": r.outcome,
            "request_id": r.request_id,
            "prev_hash": chained.prev_hash,
            "hash": chained.hash,
        }

    def to_chained(self) -> ChainedRecord:
        return chained_from_row(self)


# The columns of an entry in the order :func:`chained_from_row` reads them; a
# Core ``select(*ENTRY_COLUMNS)`` skips the ORM's identity map, which matters
# when a verification streams a million rows.
ENTRY_COLUMNS = (
    AuditEntry.seq,
    AuditEntry.at_us,
    AuditEntry.actor,
    AuditEntry.role,
    AuditEntry.office,
    AuditEntry.device,
    AuditEntry.action,
    AuditEntry.target,
    AuditEntry.fields,
    AuditEntry.outcome,
    AuditEntry.request_id,
    AuditEntry.prev_hash,
    AuditEntry.hash,
)


class EntryRow(NamedTuple):
    """A stored entry's columns as read raw (a DBAPI tuple), by name."""

    seq: Any
    at_us: Any
    actor: Any
    role: Any
    office: Any
    device: Any
    action: Any
    target: Any
    fields: Any
    outcome: Any
    request_id: Any
    prev_hash: Any
    hash: Any


def link_of_row(row: Sequence[Any]) -> tuple[int, bytes, bytes, bool]:
    """The verifier's view of a stored row (columns as ``ENTRY_COLUMNS``): seq, prev_hash,
    hash, and whether the hash is over the row's content.

    A plainly valid row is hashed from its columns directly
    (:func:`~casework.audit.encoding.stored_row_hash`); any other goes the slow
    way, through :func:`stored_entry`, so that an unreadable row is named as
    it always was.
    """
    digest = stored_row_hash(row)
    if digest is not None:
        return row[0], row[11], row[12], digest == row[12]
    entry = stored_entry(EntryRow(*row))
    matches = entry_hash(entry.prev_hash, entry.record) == entry.hash
    return entry.seq, entry.prev_hash, entry.hash, matches


def chained_from_row(row: Any) -> ChainedRecord:
    """Rebuild the chained entry from a stored row (an ``AuditEntry`` or a Core row).

    Raises ValueError or TypeError when the row cannot be an entry (a value
    that fails :class:`AuditRecord`'s checks, malformed ``fields``): the
    database is not trusted either.
    """
    record = AuditRecord(
        seq=row.seq,
        at=from_micros(row.at_us),
        actor=row.actor,
        role=row.role,
        office=row.office,
        device=row.device,
        action=row.action,
        target=row.target,
        fields=_field_names(row.fields),
        outcome=row.outcome,
        request_id=row.request_id,
    )
    return ChainedRecord(record, bytes(row.prev_hash), bytes(row.hash))


@lru_cache(maxsize=1024)
def _field_names(stored: str) -> tuple[str, ...]:
    """The stored JSON list as a tuple; the same few lists repeat across entries."""
    names = json.loads(stored)
    if not isinstance(names, list):
        raise TypeError("fields must be a JSON list")
    return tuple(names)


def unreadable_placeholder(row: Any) -> ChainedRecord:
    """Stands in for a stored row that is not a valid entry, so that a verifier
    names its position instead of the service failing half-way.

    Its hash is all zeros, which no entry's SHA-256 is: it can never verify.
    """
    prev = bytes(row.prev_hash) if isinstance(row.prev_hash, bytes) else b""
    if len(prev) != HASH_SIZE:
        prev = bytes(HASH_SIZE)
    record = AuditRecord(
        seq=row.seq if isinstance(row.seq, int) and row.seq > 0 else 1,
        at=_EPOCH,
        actor=None,
        role=None,
        office=None,
        device=None,
        action="unreadable",
        target=None,
        fields=(),
        outcome="failure",
        request_id=None,
    )
    return ChainedRecord(record, prev, bytes(HASH_SIZE))


def stored_entry(row: Any) -> ChainedRecord:
    """:func:`chained_from_row`, or :func:`unreadable_placeholder` when it fails."""
    try:
        return chained_from_row(row)
    except (TypeError, ValueError):
        return unreadable_placeholder(row)


class AuditCheckpoint(Base):
    """A signed checkpoint: the log had ``size`` entries with Merkle ``root``.

    ``note`` is the evidence (the C2SP signed note, verbatim); ``root`` and
    ``frontier`` are conveniences the service rebuilds the next tree from, and
    are checked against each other before they are trusted. One checkpoint per
    size: two different roots for one size would be a fork.
    """

    __tablename__ = "audit_checkpoints"

    size: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False, comment="Entries covered: seq 1..size."
    )
    root: Mapped[bytes] = mapped_column(
        LargeBinary(32), comment="RFC 6962 Merkle root over the entry hashes."
    )
    frontier: Mapped[bytes] = mapped_column(
        LargeBinary, comment="Merkle peaks at this size, concatenated, largest first."
    )
    note: Mapped[str] = mapped_column(Text, comment="The signed checkpoint note (C2SP).")
    signed_at_us: Mapped[int] = mapped_column(
        BigInteger, comment="UTC signing time in microseconds since the Unix epoch."
    )


class AuditTile(Base):
    """A hash tile (C2SP ``tlog-tiles``): up to 256 hashes of tree level ``8 * level``.

    Derived from the entries (see :mod:`casework.audit.tiles`), so it may be
    rewritten as it grows; a verifier rebuilds it and trusts only the signed
    roots. ``hashes`` is the concatenation, in order; its first W hashes
    never change once written. ``inner_nodes`` (full tiles only; None for a partial
    tile or one written before it existed) saves a proof rebuilding a node
    from up to 128 hashes (see :data:`casework.audit.tiles.INNER_FROM`).
    """

    __tablename__ = "audit_tiles"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hashes: Mapped[bytes] = mapped_column(LargeBinary, comment="Concatenated 32-byte hashes.")
    inner_nodes: Mapped[bytes | None] = mapped_column(
        LargeBinary, comment="A full tile's inner nodes of heights 4..7 (30 hashes)."
    )


class AuditTree(Base):
    """How far the tiles are integrated: one row (id 1).

    ``size`` entries are in the tiles; ``root`` is the tree's root and
    ``frontier`` its peaks at that size, ``last_hash`` the hash of entry
    ``size`` (the next entry must link to it).
    """

    __tablename__ = "audit_tree"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    frontier: Mapped[bytes] = mapped_column(LargeBinary)
    last_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditKey(Base):
    """A checkpoint-signing key in the chain, in force from ``from_size`` (public half only).

    ``statement`` is the rotation statement (a signed note signed by the key
    before and by this one); None for the first key.
    """

    __tablename__ = "audit_keys"

    from_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    vkey: Mapped[str] = mapped_column(String(256), unique=True, comment="C2SP verifier key.")
    statement: Mapped[str | None] = mapped_column(Text)
    created_at_us: Mapped[int] = mapped_column(BigInteger)


class AuditWitness(Base):
    """A witness registered by an administrator: its C2SP vkey and the last size it cosigned."""

    __tablename__ = "audit_witnesses"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    vkey: Mapped[str] = mapped_column(String(256), unique=True)
    created_at_us: Mapped[int] = mapped_column(BigInteger)


class AuditCosignature(Base):
    """A witness's cosignature (C2SP tlog-cosignature, timestamped Ed25519) of a checkpoint."""

    __tablename__ = "audit_cosignatures"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    witness: Mapped[str] = mapped_column(String(128), primary_key=True)
    timestamp: Mapped[int] = mapped_column(BigInteger, comment="Seconds since the Unix epoch.")
    line: Mapped[str] = mapped_column(Text, comment="The signature line, verbatim.")


class AuditVerification(Base):
    """The outcome of one verification of the stored log (full, or incremental from the last).

    ``last_hash`` and ``frontier`` are where a verified prefix ends, so that
    the next verification reads only the entries after ``size``.
    """

    __tablename__ = "audit_verifications"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), comment="full or incremental")
    at_us: Mapped[int] = mapped_column(BigInteger)
    from_size: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger)
    ok: Mapped[bool] = mapped_column(Boolean)
    checkpoints: Mapped[int] = mapped_column(BigInteger)
    first_bad_seq: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    last_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    frontier: Mapped[bytes] = mapped_column(LargeBinary)
