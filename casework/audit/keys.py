"""The log's signing key: its own file, apart from the encryption keyring, and its rotations.

Where it lives: ``audit_key_path`` (default ``<instance>/audit-signing-key.json``,
mode 0600, written atomically), never in the keyring file and never in the
database. A deployment that predates this file has its first key copied from
the keyring's Ed25519 key on first use, so checkpoints signed before keep
verifying under the key auditors pinned.

Rotation (``casework audit rotate-key``) is itself in the log. Under the log's
lock it appends an ``audit.key_rotate`` entry (seq ``r``), signs the
checkpoint of size ``r`` with **both** keys (two signature lines in one
note) and stores a *rotation statement*, a signed note naming the log, ``r``,
and the old and new verifier keys, signed by the old key and by the new. The
old key signs checkpoints of sizes up to ``r``, the new one from ``r``. A
verifier who pinned any earlier key follows the statements (each must verify
under the key before it and the key it introduces); a checkpoint signed by a
key that no statement introduced — a key replaced behind the log's back — is
refused. ``GET /api/v1/audit/keys`` lists the chain.

The file is re-read when it changes (other workers pick a rotation up within a
second), and the signer never signs with a key that is not the latest in the
chain stored in the database.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.audit.checkpoint import (
    SIGNATURE_PREFIX,
    CheckpointError,
    VerifierKey,
    key_id,
    sign_note,
    verify_note,
)
from casework.audit.models import AuditKey, to_micros
from casework.audit.verify import KeyInForce
from casework.security.app import holder as keyring_holder
from casework.security.errors import KeyringError

FILE_MODE = 0o600
ROTATION_HEADER = "casework audit key rotation"
_RECHECK_SECONDS = 1.0


class SigningKeyFile:
    """The current signing key in a 0600 JSON file, re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._key: Ed25519PrivateKey | None = None
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0

    def exists(self) -> bool:
        return self.path.exists()

    def get(self) -> Ed25519PrivateKey:
        now = time.monotonic()
        if self._key is None or now - self._checked > _RECHECK_SECONDS:
            with self._lock:
                self._refresh(now)
        assert self._key is not None
        return self._key

    def reload(self) -> Ed25519PrivateKey:
        with self._lock:
            self._stamp = None
            self._refresh(time.monotonic())
        assert self._key is not None
        return self._key

    def _refresh(self, now: float) -> None:
        stamp = self._file_stamp()
        if self._key is None or stamp != self._stamp:
            self._key = self._load()
            self._stamp = stamp
        self._checked = now

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return None
        return (status.st_mtime_ns, status.st_ino)

    def _load(self) -> Ed25519PrivateKey:
        try:
            status = self.path.stat()
            data = json.loads(self.path.read_text(encoding="ascii"))
        except FileNotFoundError:
            raise KeyringError(f"no audit signing key at {self.path}") from None
        except (OSError, ValueError) as error:
            raise KeyringError(f"cannot read audit signing key {self.path}: {error}") from None
        if status.st_mode & 0o077:
            raise KeyringError(f"audit signing key {self.path} must be mode 0600")
        try:
            seed = base64.b64decode(data["ed25519_seed"], validate=True)
            return Ed25519PrivateKey.from_private_bytes(seed)
        except (KeyError, TypeError, ValueError) as error:
            raise KeyringError(f"audit signing key {self.path} is malformed: {error}") from None

    def save(self, key: Ed25519PrivateKey) -> None:
        """Write atomically (temporary file, fsync, rename), mode 0600."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        seed = key.private_bytes_raw()
        document = {"version": 1, "ed25519_seed": base64.b64encode(seed).decode("ascii")}
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".audit-key-")
        try:
            os.fchmod(descriptor, FILE_MODE)
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                json.dump(document, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        with self._lock:
            self._key, self._stamp, self._checked = key, self._file_stamp(), time.monotonic()


def pending_file(holder: SigningKeyFile) -> SigningKeyFile:
    """Where a rotation puts the new key before its statement commits."""
    return SigningKeyFile(holder.path.with_name(holder.path.name + ".pending"))


def key_file(app: Flask | None = None) -> SigningKeyFile:
    holder: SigningKeyFile = (app or current_app).extensions["casework.audit.key"]
    return holder


def init_app(app: Flask) -> None:
    configured = app.config["CASEWORK"]["audit_key_path"]
    path = Path(configured or Path(app.instance_path) / "audit-signing-key.json")
    app.extensions["casework.audit.key"] = SigningKeyFile(path)

    def ensure() -> None:
        # No keyring yet: the keyring's own step reports it.
        with app.app_context(), contextlib.suppress(KeyringError):
            signing_key()

    app.extensions.setdefault("casework.init_steps", []).append(ensure)


def signing_key() -> Ed25519PrivateKey:
    """The current signing key; created from the keyring's key on first use (migration).

    Raises :class:`KeyringError` when neither exists (before ``casework init``).
    """
    holder = key_file()
    if not holder.exists():
        holder.save(keyring_holder().get().signing_key)
    return holder.get()


def public_key() -> Ed25519PublicKey:
    return signing_key().public_key()


# --- The chain of keys. ---


@dataclass(frozen=True)
class KeyRecord:
    """A key in the chain: in force for checkpoints of size ``from_size`` and larger."""

    from_size: int
    vkey: str
    statement: str | None  # None for the first key


def chain(session: Session, origin: str) -> list[KeyRecord]:
    """The stored chain, oldest first; the current key alone when nothing was rotated."""
    rows = session.execute(
        select(AuditKey.from_size, AuditKey.vkey, AuditKey.statement).order_by(AuditKey.from_size)
    ).all()
    if rows:
        return [KeyRecord(row.from_size, row.vkey, row.statement) for row in rows]
    return [KeyRecord(0, VerifierKey(origin, public_key()).encode(), None)]


def latest_vkey(session: Session) -> str | None:
    """The newest key the database knows of (None: never rotated)."""
    return session.scalar(select(AuditKey.vkey).order_by(AuditKey.from_size.desc()).limit(1))


def rotation_body(origin: str, from_size: int, old: str, new: str) -> str:
    return f"{ROTATION_HEADER}\n{origin}\n{from_size}\n{old}\n{new}\n"


def add_signature(note: str, key: Ed25519PrivateKey, key_name: str) -> str:
    """Append a second signature line to a signed note (same body)."""
    body = note[: note.rfind("\n\n") + 1]
    signature = key.sign(body.encode("utf-8"))
    blob = base64.b64encode(key_id(key_name, key.public_key()) + signature).decode("ascii")
    return f"{note}{SIGNATURE_PREFIX}{key_name} {blob}\n"


def sign_both(old: Ed25519PrivateKey, new: Ed25519PrivateKey, key_name: str, body: str) -> str:
    return add_signature(sign_note(old, key_name, body), new, key_name)


def record_rotation(
    session: Session, origin: str, from_size: int, old: Ed25519PrivateKey, new: Ed25519PrivateKey
) -> KeyRecord:
    """Store the rotation statement (the caller holds the log's lock)."""
    old_vkey = VerifierKey(origin, old.public_key()).encode()
    new_vkey = VerifierKey(origin, new.public_key()).encode()
    if latest_vkey(session) is None:
        session.add(AuditKey(from_size=0, vkey=old_vkey, statement=None, created_at_us=_now()))
    statement = sign_both(old, new, origin, rotation_body(origin, from_size, old_vkey, new_vkey))
    session.add(
        AuditKey(from_size=from_size, vkey=new_vkey, statement=statement, created_at_us=_now())
    )
    session.flush()
    return KeyRecord(from_size, new_vkey, statement)


def _now() -> int:
    return to_micros(datetime.now(UTC))


class KeyChainError(ValueError):
    """The chain of keys does not follow from the pinned key by signed rotations.

    ``from_size`` is where the unsigned key would have taken over.
    """

    def __init__(self, message: str, from_size: int) -> None:
        super().__init__(message)
        self.from_size = from_size


@dataclass(frozen=True)
class KeyRange:
    key: VerifierKey
    from_size: int
    until_size: int | None  # inclusive; None: still current


def follow_chain_lenient(
    pinned: VerifierKey, records: list[KeyRecord], origin: str
) -> tuple[list[KeyRange], KeyChainError | None]:
    """As :func:`follow_chain`, but return the ranges up to the first bad record and why."""
    for count in range(len(records), -1, -1):
        try:
            ranges = follow_chain(pinned, records[:count], origin)
        except KeyChainError as error:
            failure = error
            continue
        return ranges, (None if count == len(records) else failure)
    return [KeyRange(pinned, 0, None)], None


def follow_chain(pinned: VerifierKey, records: list[KeyRecord], origin: str) -> list[KeyRange]:
    """The keys in force, by size, starting from the ``pinned`` one.

    Each later key must come with a statement that verifies under the key
    before it and under itself, and names both and its size. Raises
    :class:`KeyChainError` at the first record that does not follow.
    """
    ranges: list[KeyRange] = []
    current = pinned
    start = 0
    found_pinned = False
    vkeys = [record.vkey for record in records]
    if pinned.encode() in vkeys[1:]:
        # The keys before the pinned one are vouched for by the statements that lead
        # to it (each signed by both keys): follow the chain from its first key.
        current = VerifierKey.parse(vkeys[0])
        records = [records[0], *records[1:]]
    for record in records:
        if not found_pinned:
            if record.vkey == current.encode():
                found_pinned, start = True, record.from_size
            continue
        try:
            new = VerifierKey.parse(record.vkey)
            body = rotation_body(origin, record.from_size, current.encode(), record.vkey)
            if record.statement is None:
                raise CheckpointError("no statement")
            for signer in (current, new):
                if verify_note(record.statement, signer.public_key, signer.name) != body:
                    raise CheckpointError("statement names other keys or size")
        except CheckpointError as error:
            raise KeyChainError(
                f"key replaced at size {record.from_size} without a rotation signed by "
                f"the previous key and the new one ({error})",
                record.from_size,
            ) from None
        ranges.append(KeyRange(current, start, record.from_size))
        current, start = new, record.from_size
    ranges.append(KeyRange(current, start, None))
    if not any(r.key.encode() == pinned.encode() for r in ranges):
        raise KeyChainError("the pinned key is not in the chain", 0)
    return ranges


def in_force(ranges: list[KeyRange]) -> list[KeyInForce]:
    """The key ranges as the verifier takes them."""
    return [KeyInForce(r.key.public_key, r.key.name, r.from_size, r.until_size) for r in ranges]
