"""The access log table: append-only, hash-chained, no personal data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from casework.audit.encoding import AuditRecord, ChainedRecord
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

    seq: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False, comment="Gapless, from 1."
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
    hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)

    @classmethod
    def from_chained(cls, chained: ChainedRecord) -> AuditEntry:
        r = chained.record
        return cls(
            seq=r.seq,
            at_us=to_micros(r.at),
            actor=r.actor,
            role=r.role,
            office=r.office,
            device=r.device,
            action=r.action,
            target=r.target,
            fields=json.dumps(list(r.fields)),
            outcome=r.outcome,
            request_id=r.request_id,
            prev_hash=chained.prev_hash,
            hash=chained.hash,
        )

    def to_chained(self) -> ChainedRecord:
        record = AuditRecord(
            seq=self.seq,
            at=from_micros(self.at_us),
            actor=self.actor,
            role=self.role,
            office=self.office,
            device=self.device,
            action=self.action,
            target=self.target,
            fields=tuple(json.loads(self.fields)),
            outcome=self.outcome,
            request_id=self.request_id,
        )
        return ChainedRecord(record, bytes(self.prev_hash), bytes(self.hash))
