"""Tables of field-office sync: devices, enrolment codes, nonces, the change feed,
per-version case snapshots, pushed mutations, client references and conflicts.

Plaintext holds ids, offices, sequence numbers, versions, statuses and times:
what ordering, scope and exactly-once need. Everything about a person (the
case snapshots a device pulls, the stored result of a mutation, both sides of
a conflict) is a :class:`~casework.cases.sealing.Sealed` attribute under the
case's data key, so erasing the case (crypto-shredding) destroys it too.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from casework.auth.timestamps import UtcDateTime, utcnow
from casework.cases.sealing import sealed_dict
from casework.db import Base
from casework.security.columns import ClientIdMixin

#: The pseudo-case whose data key seals results that belong to no case (a rejected
#: create): they hold field errors, never personal data, and are sealed all the same
#: so that the mutation store keeps no plaintext at all.
RESULTS_KEY_ID = uuid.UUID("5c0e7a1d-5e4a-4c1b-9d2f-73796e632d72")


class Device(Base):
    """An enrolled field device: its office and Ed25519 public key (never a private key)."""

    __tablename__ = "sync_devices"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    office_code: Mapped[str] = mapped_column(ForeignKey("offices.code"), index=True)
    label: Mapped[str] = mapped_column(String(64), comment="Chosen by the administrator.")
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32), comment="Raw Ed25519 key.")
    enrolled_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    enrolled_by: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, comment="The administrator who issued the enrolment code."
    )
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_seq: Mapped[int] = mapped_column(
        BigInteger, default=1, comment="The device_seq the next new mutation must carry."
    )

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class EnrolmentCode(Base):
    """A one-time enrolment code, known by its SHA-256 digest only."""

    __tablename__ = "sync_enrolment_codes"

    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    office_code: Mapped[str] = mapped_column(ForeignKey("offices.code"))
    label: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SeenNonce(Base):
    """A signature nonce a device used, kept while its ``created`` is inside the window."""

    __tablename__ = "sync_nonces"

    device_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class FeedClock(Base):
    """The single row holding the last sequence number the feed handed out.

    Updating it at the end of a writing transaction takes its row lock until the
    commit, so sequence numbers are allocated in commit order.
    """

    __tablename__ = "sync_feed_clock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)


class OfficeFeed(Base):
    """Per office: the last sequence number and the checkpoint of the cases in scope."""

    __tablename__ = "sync_office_feeds"

    office_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    count: Mapped[int] = mapped_column(Integer, default=0, comment="Cases in scope.")
    checksum: Mapped[bytes] = mapped_column(
        LargeBinary(32), comment="XOR of SHA-256(reference, version) over the cases in scope."
    )


class FeedEntry(Base):
    """The latest change of one case for one office: one row per (office, case).

    A later change of the case moves the row to a new sequence number, so a
    pull from the start reads each case once (the snapshot) and then goes on
    live. ``delete`` and ``evict`` rows are tombstones, purged after the
    retention setting (a cursor older than that must resync).
    """

    __tablename__ = "sync_feed"
    __table_args__ = (
        UniqueConstraint("office_code", "case_id"),
        Index("ix_sync_feed_office_code_seq", "office_code", "seq", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    office_code: Mapped[str] = mapped_column(String(32))
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    op: Mapped[str] = mapped_column(String(8), comment="upsert, delete or evict.")
    reference: Mapped[str] = mapped_column(String(11))
    version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class CaseVersion(ClientIdMixin, Base):
    """The case view at one version, sealed under the case key: what a pull sends and
    the base a pushed update is merged against."""

    __tablename__ = "sync_case_versions"
    __table_args__ = (UniqueConstraint("case_id", "version"),)

    case_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    snapshot = sealed_dict(512)


class Mutation(Base):
    """A pushed mutation's stored result, kept forever for exactly-once delivery.

    ``body_mac`` is an HMAC of the canonical mutation under a server secret (never a
    plain digest, which could confirm a guessed value); the result is sealed.
    """

    __tablename__ = "sync_mutations"
    __table_args__ = (UniqueConstraint("device_id", "device_seq"),)

    mutation_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    device_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    device_seq: Mapped[int | None] = mapped_column(
        BigInteger, comment="Null when the result did not use up a number (a reused one)."
    )
    body_mac: Mapped[bytes] = mapped_column(LargeBinary(32))
    status: Mapped[str] = mapped_column(String(16))
    case_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    case_version: Mapped[int | None] = mapped_column(
        Integer, comment="The case version this mutation produced (merges skip own writes)."
    )
    key_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, comment="The case whose key seals the result (or the results pseudo-case)."
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    result = sealed_dict(256, case_id_attr="key_id", row_id_attr="mutation_id")


class ClientRef(Base):
    """A device-chosen UUID for a case or member created offline, and the server's id."""

    __tablename__ = "sync_client_refs"

    client_ref: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    device_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    member_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class SyncConflict(ClientIdMixin, Base):
    """Fields a device and the server both changed: the server's value stays, the
    device's proposal waits here, sealed, for a person to decide."""

    __tablename__ = "sync_conflicts"
    __table_args__ = (Index("ix_sync_conflicts_office_code_status", "office_code", "status"),)

    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    office_code: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str] = mapped_column(String(11))
    device_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    mutation_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    base_version: Mapped[int] = mapped_column(Integer)
    server_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="open")
    version: Mapped[int] = mapped_column(Integer, default=1, comment="The ETag.")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    fields = sealed_dict(512)
