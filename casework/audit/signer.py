"""Signing checkpoints of the stored log: when one is due, and how it stays cheap.

A checkpoint is signed at the first append, then whenever an append finds
``audit_checkpoint_seconds`` seconds (default 10), ``audit_checkpoint_every``
entries or ``audit_checkpoint_minutes`` minutes since the last one, and on
demand (``casework audit checkpoint``, ``POST /api/v1/audit/checkpoints``). A
quiet log gets no timed checkpoint until its next append: run the command from
cron where that matters.

Cost at append time is one indexed read of the latest checkpoint. Signing
integrates the tiles up to the head (:mod:`casework.audit.tree`), which reads
and re-verifies (sequence, link and hash) only the entries not integrated yet,
and signs the tree's root: the signer never vouches for a chain that does not
hold.

Everything here runs while the caller holds the append lock (an ``audit.record``
in the same transaction), so two checkpoints of one size cannot be signed.
The signed-note key name is the origin, so the verifier key string that
auditors pin names the log it verifies.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import Flask, current_app
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from casework.audit import keys, tree
from casework.audit.checkpoint import sign_checkpoint, verifier_key
from casework.audit.models import AuditCheckpoint, AuditEntry, to_micros
from casework.audit.tree import LogIntegrityError
from casework.config import ConfigError
from casework.errors import ServiceUnavailable
from casework.security.errors import KeyringError

log = logging.getLogger("casework.audit")
_KEY_NAME = re.compile(r"[^\s+\x00-\x1f\x7f]+")


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
    """The configured origin and the current signing key's public half; 503 without one."""
    return LogIdentity(
        current_app.config["CASEWORK"]["audit_origin"], current_signing_key().public_key()
    )


def current_signing_key() -> Ed25519PrivateKey:
    """The log's signing key (its own file, see :mod:`casework.audit.keys`); 503 without one."""
    try:
        return keys.signing_key()
    except KeyringError:
        raise ServiceUnavailable(
            "The audit signing key is not available; run casework init."
        ) from None


def _key_in_force(session: Session, origin: str) -> Ed25519PrivateKey | None:
    """The key to sign with now: the latest of the stored chain, or None (do not sign).

    Another process may have rotated the key a moment ago; re-read the file
    once before giving up, so that no checkpoint is signed by a key the chain
    has already retired.
    """
    key = keys.signing_key()
    latest = keys.latest_vkey(session)
    if latest is None or verifier_key(origin, key.public_key()) == latest:
        return key
    key = keys.key_file().reload()
    if verifier_key(origin, key.public_key()) == latest:
        return key
    pending = keys.pending_file(keys.key_file())
    if pending.exists():  # a rotation committed, then stopped before installing its key
        key = pending.get()
        if verifier_key(origin, key.public_key()) == latest:
            keys.key_file().save(key)
            pending.path.unlink(missing_ok=True)
            return key
    log.error("audit checkpoint not signed: the key file is not the chain's latest key")
    return None


WRITTEN_LINKS = "casework.audit.written_links"


def written_links() -> tree.WrittenLinks | None:
    """The links of the entries this process's group commits wrote (see ``tree.WrittenLinks``)."""
    links: tree.WrittenLinks | None = current_app.extensions.get(WRITTEN_LINKS)
    return links


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
    target: Session | Connection, seq: int, last_size: int | None, last_signed_at_us: int | None
) -> AuditCheckpoint | None:
    """Called by ``record`` after appending ``seq``, under the lock; sign if one is due.

    ``target`` is the appending transaction: a session's, or a connection's (a
    group-commit batch), which a session then joins to sign, only when one is due.
    ``last_*`` describe the latest checkpoint (None: there is none), as read
    with the head. Never fails the caller's request: without a keyring
    (before ``casework init``) nothing is signed, and a log that does not
    verify is reported in the server log and left unsigned, for the verifier
    to name.
    """
    settings = current_app.config["CASEWORK"]
    now_us = now_micros()
    if not _due(seq, last_size, last_signed_at_us, now_us, settings):
        return None
    if isinstance(target, Session):
        return _sign_if_keyed(target, seq, settings["audit_origin"], now_us)
    # Joined to the connection's transaction, which it never commits nor rolls back.
    with Session(bind=target, join_transaction_mode="rollback_only") as session:
        return _sign_if_keyed(session, seq, settings["audit_origin"], now_us)


def _sign_if_keyed(session: Session, seq: int, origin: str, now_us: int) -> AuditCheckpoint | None:
    """Sign at ``seq`` with the key in force; None without a key or over a broken log."""
    try:
        signing_key = _key_in_force(session, origin)
    except KeyringError:
        return None
    if signing_key is None:
        return None
    try:
        return _sign(session, seq, signing_key, origin, now_us)
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
    seconds = int(settings["audit_checkpoint_seconds"])
    minutes = int(settings["audit_checkpoint_minutes"])
    new_entries = seq - last_size
    if new_entries <= 0:
        return False
    by_count = every > 0 and new_entries >= every
    by_seconds = seconds > 0 and now_us - last_at_us >= seconds * 1_000_000
    by_minutes = minutes > 0 and now_us - last_at_us >= minutes * 60_000_000
    return by_count or by_seconds or by_minutes


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
    current_signing_key()  # 503 without a key
    signing_key = _key_in_force(session, origin)
    if signing_key is None:
        raise ServiceUnavailable("The audit signing key file is not the key in force.")
    return _sign(session, head, signing_key, origin, now_micros())


def _sign(
    session: Session, size: int, signing_key: Ed25519PrivateKey, origin: str, now_us: int
) -> AuditCheckpoint:
    """Integrate the tiles up to ``size`` (the head) and sign the tree's root there."""
    state = tree.integrate(session, size, known=written_links())
    if state.size != size:  # the tiles already reach past ``size``: sign a smaller tree
        raise LogIntegrityError(size + 1, "the tiles are ahead of the size to sign")
    note = sign_checkpoint(signing_key, origin, origin, size, state.root)
    checkpoint = AuditCheckpoint(
        size=size,
        root=state.root,
        frontier=b"".join(state.peaks),
        note=note,
        signed_at_us=now_us,
    )
    session.add(checkpoint)
    session.flush()  # the primary key refuses a second checkpoint of this size
    return checkpoint
