"""The log's side of witnessing: registered witnesses and the cosignatures they post.

A witness is registered by an administrator with its C2SP vkey. A
cosignature is accepted without any other credential when it verifies under
a registered key over a stored checkpoint, and that checkpoint is consistent
with the last one the same witness cosigned (it is not smaller, and the
tiles give the older checkpoint's root inside the newer tree). The latest
checkpoint is then served with the cosignature lines appended to its note.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casework.audit import tree
from casework.audit.checkpoint import CheckpointError
from casework.audit.models import AuditCheckpoint, AuditCosignature, AuditWitness, to_micros
from casework.audit.witness import WitnessKey, note_body, verify_cosignature
from casework.errors import Conflict, NotFound, ValidationFailed


@dataclass(frozen=True)
class Cosignature:
    name: str
    time: int
    line: str


def register(session: Session, vkey: str) -> WitnessKey:
    """Register a witness by its vkey (422 when malformed, 409 when the name is taken)."""
    try:
        key = WitnessKey.parse(vkey)
    except CheckpointError as error:
        raise ValidationFailed(errors={"json": {"vkey": [str(error)]}}) from None
    existing = session.get(AuditWitness, key.name)
    if existing is not None:
        if existing.vkey == key.encode():
            return key
        raise Conflict("A witness of this name is registered with another key.")
    now = to_micros(datetime.now(UTC))
    session.add(AuditWitness(name=key.name, vkey=key.encode(), created_at_us=now))
    session.flush()
    return key


def accept(session: Session, size: int, line: str) -> Cosignature:
    """Verify and store a cosignature of the checkpoint of ``size``."""
    checkpoint = session.get(AuditCheckpoint, size)
    if checkpoint is None:
        raise NotFound("No checkpoint of this size.")
    name = line.removeprefix("\u2014 ").split(" ", 1)[0]
    witness = session.get(AuditWitness, name) if name else None
    if witness is None:
        raise ValidationFailed(errors={"json": {"cosignature": ["Not by a registered witness."]}})
    try:
        timestamp = verify_cosignature(
            line, WitnessKey.parse(witness.vkey), note_body(checkpoint.note)
        )
    except CheckpointError as error:
        raise ValidationFailed(errors={"json": {"cosignature": [str(error)]}}) from None
    previous = session.scalar(
        select(func.max(AuditCosignature.size)).where(AuditCosignature.witness == name)
    )
    if previous is not None:
        if previous > size:
            raise Conflict("This witness has cosigned a larger checkpoint already.")
        older = session.get(AuditCheckpoint, previous)
        if older is None or tree.root_at(session, previous) != bytes(older.root):
            raise Conflict("Not consistent with the checkpoint this witness cosigned last.")
    stored = session.get(AuditCosignature, (size, name))
    if stored is None:
        session.add(AuditCosignature(size=size, witness=name, timestamp=timestamp, line=line))
        session.flush()
    return Cosignature(name, timestamp, line)


def cosignatures(session: Session, size: int) -> list[Cosignature]:
    rows = session.execute(
        select(AuditCosignature.witness, AuditCosignature.timestamp, AuditCosignature.line)
        .where(AuditCosignature.size == size)
        .order_by(AuditCosignature.witness)
    ).all()
    return [Cosignature(row.witness, row.timestamp, row.line) for row in rows]


def latest_cosigned(session: Session) -> AuditCheckpoint | None:
    size = session.scalar(select(func.max(AuditCosignature.size)))
    return None if size is None else session.get(AuditCheckpoint, size)
