"""Signing checkpoints of the stored log: when one is due, and how it stays cheap.

A checkpoint is signed at the first append, then whenever an append finds
``audit_checkpoint_every`` entries or ``audit_checkpoint_minutes`` minutes since
the last one, and on demand (``casework audit checkpoint``, ``POST
/api/v1/audit/checkpoints``). A quiet log gets no timed checkpoint until its
next append: run the command from cron where that matters.

Cost at append time is one indexed read of the latest checkpoint. Signing reads
only the entries since the previous checkpoint: each checkpoint row keeps the
Merkle frontier (the peaks of :class:`~casework.audit.merkle.CompactRange`, at
most 64 hashes), so the next root extends it instead of rereading the log.
The frontier is checked against its row's root before use, and the new
entries are re-verified (sequence, link and hash) before anything is signed:
the signer never vouches for a chain that does not hold.

Everything here runs while the caller holds the append lock (an ``audit.record``
in the same transaction), so two checkpoints of one size cannot be signed.
The signed-note key name is the origin, so the verifier key string that
auditors pin names the log it verifies.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.audit.checkpoint import sign_checkpoint, verifier_key
from casework.audit.encoding import GENESIS_HASH, HASH_SIZE, ChainedRecord, entry_hash
from casework.audit.merkle import CompactRange
from casework.audit.models import (
    ENTRY_COLUMNS,
    AuditCheckpoint,
    AuditEntry,
    chained_from_row,
    to_micros,
)
from casework.config import ConfigError
from casework.security.app import current_keyring, holder
from casework.security.errors import KeyringError

log = logging.getLogger("casework.audit")
_KEY_NAME = re.compile(r"[^\s+\x00-\x1f\x7f]+")
_READ_BATCH = 1000


class LogIntegrityError(Exception):
    """The stored log does not verify where a checkpoint would cover it: not signed.

    ``seq`` is the first entry that failed; the message names it and the rule
    broken, never an entry's content.
    """

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(reason)
        self.seq = seq
        self.reason = reason


@dataclass(frozen=True)
class LogIdentity:
    """Who signs and which log: what a verifier needs besides the entries."""

    origin: str
    public_key: Ed25519PublicKey

    @property
    def key_name(self) -> str:
        return self.origin

    @property
    def verifier_key(self) -> str:
        """The C2SP verifier key string, ``<name>+<key id>+<base64 key>``."""
        return verifier_key(self.key_name, self.public_key)


def check_origin(app: Flask) -> None:
    """Refuse to start when ``audit_origin`` cannot also be a signed-note key name."""
    origin = app.config["CASEWORK"]["audit_origin"]
    if not _KEY_NAME.fullmatch(origin):
        raise ConfigError("audit_origin must be non-empty, without spaces, '+' or control codes")


def log_identity() -> LogIdentity:
    """The configured origin and the keyring's public key; 503 without a keyring."""
    return LogIdentity(current_app.config["CASEWORK"]["audit_origin"], current_keyring().verify_key)


def now_micros() -> int:
    """The current UTC time in microseconds (one place, so tests can move the clock)."""
    return to_micros(datetime.now(UTC))


def latest_checkpoint(session: Session, at_most: int | None = None) -> AuditCheckpoint | None:
    """The checkpoint of the largest size (not above ``at_most``), or None."""
    query = select(AuditCheckpoint).order_by(AuditCheckpoint.size.desc()).limit(1)
    if at_most is not None:
        query = query.where(AuditCheckpoint.size <= at_most)
    return session.scalars(query).first()


def checkpoint_if_due(
    session: Session, seq: int, last_size: int | None, last_signed_at_us: int | None
) -> AuditCheckpoint | None:
    """Called by ``record`` after appending ``seq``, under the lock; sign if one is due.

    ``last_*`` describe the latest checkpoint (None: there is none), as read
    with the head. Never fails the caller's request: without a keyring
    (before ``casework init``) nothing is signed, and a log that does not
    verify is reported in the server log and left unsigned, for the verifier
    to name.
    """
    try:
        signing_key = holder().get().signing_key
    except KeyringError:
        return None
    settings = current_app.config["CASEWORK"]
    now_us = now_micros()
    if not _due(seq, last_size, last_signed_at_us, now_us, settings):
        return None
    try:
        return _sign(session, seq, signing_key, settings["audit_origin"], now_us)
    except LogIntegrityError as error:
        log.error("audit checkpoint not signed: %s", error.reason, extra={"event": "audit"})
        return None


def _due(
    seq: int, last_size: int | None, last_at_us: int | None, now_us: int, settings: dict[str, Any]
) -> bool:
    """The first checkpoint is due at once; zero or less switches a trigger off."""
    if last_size is None or last_at_us is None:
        return True
    every = int(settings["audit_checkpoint_every"])
    minutes = int(settings["audit_checkpoint_minutes"])
    new_entries = seq - last_size
    if new_entries <= 0:
        return False
    by_count = every > 0 and new_entries >= every
    by_time = minutes > 0 and now_us - last_at_us >= minutes * 60_000_000
    return by_count or by_time


def sign_now(session: Session) -> AuditCheckpoint:
    """Sign a checkpoint of the whole log as it stands (the caller holds the lock).

    Idempotent: when the latest checkpoint already covers the head, it is
    returned. Raises :class:`LogIntegrityError` when the entries since the last
    checkpoint do not verify.
    """
    head = session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1)) or 0
    last = latest_checkpoint(session)
    if last is not None and last.size == head:
        return last
    origin = current_app.config["CASEWORK"]["audit_origin"]
    return _sign(session, head, current_keyring().signing_key, origin, now_micros())


def _sign(
    session: Session, size: int, signing_key: Ed25519PrivateKey, origin: str, now_us: int
) -> AuditCheckpoint:
    tree = tree_at(session, size)
    note = sign_checkpoint(signing_key, origin, origin, size, tree.root())
    checkpoint = AuditCheckpoint(
        size=size,
        root=tree.root(),
        frontier=b"".join(tree.peaks),
        note=note,
        signed_at_us=now_us,
    )
    session.add(checkpoint)
    session.flush()  # the primary key refuses a second checkpoint of this size
    return checkpoint


def tree_at(session: Session, size: int) -> CompactRange:
    """The Merkle tree of the first ``size`` entries, from the nearest trusted frontier.

    Raises :class:`LogIntegrityError` at the first entry read that does not
    verify, or when the log has fewer than ``size`` entries.
    """
    base = latest_checkpoint(session, at_most=size)
    tree, prev = _start_from(session, base)
    for entry in _entries_after(session, tree.size, size):
        expected = tree.size + 1
        if entry.seq != expected:
            raise LogIntegrityError(expected, f"seq {expected} is missing")
        if entry.prev_hash != prev:
            raise LogIntegrityError(expected, f"seq {expected} does not link to seq {tree.size}")
        if entry_hash(prev, entry.record) != entry.hash:
            raise LogIntegrityError(expected, f"seq {expected} does not match its hash")
        tree.append(entry.hash)
        prev = entry.hash
    if tree.size != size:
        raise LogIntegrityError(tree.size + 1, f"seq {tree.size + 1} is missing")
    return tree


def _start_from(session: Session, base: AuditCheckpoint | None) -> tuple[CompactRange, bytes]:
    """The frontier of ``base`` and the hash of its last entry, or an empty tree."""
    if base is None or base.size == 0:
        return CompactRange(), GENESIS_HASH
    frontier = bytes(base.frontier)
    peaks = [frontier[i : i + HASH_SIZE] for i in range(0, len(frontier), HASH_SIZE)]
    try:
        tree = CompactRange(base.size, peaks)
    except ValueError:
        tree = None
    last_hash = session.scalar(select(AuditEntry.hash).where(AuditEntry.seq == base.size))
    if tree is None or tree.root() != bytes(base.root) or last_hash is None:
        log.warning("audit checkpoint frontier unusable; rebuilding", extra={"event": "audit"})
        return CompactRange(), GENESIS_HASH
    return tree, bytes(last_hash)


def _entries_after(session: Session, after: int, upto: int) -> Iterator[ChainedRecord]:
    """Entries ``after < seq <= upto`` in order, read in batches."""
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
            yield _readable(row)
        after = rows[-1].seq


def _readable(row: Any) -> ChainedRecord:
    try:
        return chained_from_row(row)
    except (TypeError, ValueError):
        raise LogIntegrityError(row.seq, f"seq {row.seq} is not a valid entry") from None
