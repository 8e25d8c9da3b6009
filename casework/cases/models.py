"""Cases (households), their members, blind-index entries and duplicate alerts.

Plaintext is limited to what access control and the workflow need: the
random reference, the owning office, the stages, each member's relationship
to the principal applicant, ids, versions and times. Every other attribute is
a :class:`~casework.security.columns.Sealed` attribute: encrypted under the
case's data key, always present and padded (see :mod:`casework.security.columns`
for the block sizes' purpose). The blocks below are chosen so that every value
of a low-cardinality field (sex, years, codes, statuses) fills one block.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.orm import relationship as orm_relationship

from casework.cases.codes import ResettlementStage, Stage
from casework.db import Base
from casework.security.columns import (
    ClientIdMixin,
    sealed_date,
    sealed_dict,
    sealed_int,
    sealed_list,
    sealed_text,
    sealed_uuid,
)
from casework.timestamps import UtcDateTime, utcnow


class Case(ClientIdMixin, Base):
    """A household registered at one office; erased cases stay as tombstones."""

    __tablename__ = "cases"
    __table_args__ = (
        # A list page reads an office's cases newest first, ties by id (migration 0022).
        Index("ix_cases_office_code_created_at_id", "office_code", "created_at", "id"),
    )

    reference: Mapped[str] = mapped_column(
        String(11), unique=True, comment="Random Crockford base32 reference with check symbol."
    )
    office_code: Mapped[str] = mapped_column(
        String(32), ForeignKey("offices.code"), comment="Owning office: the scope of access."
    )
    stage: Mapped[str] = mapped_column(String(32), default=Stage.INTAKE.value)
    resettlement_stage: Mapped[str] = mapped_column(
        String(40), default=ResettlementStage.NOT_CONSIDERED.value
    )
    # Up to 15 codes fill one 128-byte block: the count of needs stays hidden.
    specific_needs = sealed_list(128, case_id_attr="id")
    version: Mapped[int] = mapped_column(Integer, default=1, comment="Bumped by every write.")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    erased_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, comment="Set when the case was crypto-shredded; only a tombstone is left."
    )

    members: Mapped[list[CaseMember]] = orm_relationship(
        back_populates="case", order_by="CaseMember.position", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"Case(reference={self.reference!r}, office={self.office_code!r})"

    @property
    def is_erased(self) -> bool:
        return self.erased_at is not None


class CaseMember(ClientIdMixin, Base):
    """One person of a household; only the relationship is plaintext."""

    __tablename__ = "case_members"

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    position: Mapped[int] = mapped_column(Integer, comment="Order within the household.")
    relationship: Mapped[str] = mapped_column(
        String(32), comment="Relationship to the principal applicant."
    )
    sex = sealed_text(16)
    birth_year = sealed_int(8)
    country_of_origin = sealed_text(8)
    full_name = sealed_text(64)
    other_names = sealed_list(64)
    date_of_birth = sealed_date(16)
    place_of_birth = sealed_text(64)
    documents = sealed_list(64)
    phone = sealed_text(48)
    address = sealed_text(128)
    narrative = sealed_text(256)
    # Children's civil status: stored (as null) for adults too, so no row marks a child.
    birth_registration = sealed_text(32)
    nationality_status = sealed_text(32)
    mother = sealed_uuid(48)
    registration_risk = sealed_dict(256)

    case: Mapped[Case] = orm_relationship(back_populates="members")

    def __repr__(self) -> str:
        return f"CaseMember(id={self.id!s}, relationship={self.relationship!r})"


#: Member attributes that the API reads and writes, in response order.
MEMBER_FIELDS: tuple[str, ...] = (
    "relationship",
    "sex",
    "birth_year",
    "country_of_origin",
    "full_name",
    "other_names",
    "date_of_birth",
    "place_of_birth",
    "documents",
    "phone",
    "address",
    "narrative",
    "birth_registration",
    "nationality_status",
    "mother",
    "registration_risk",
)


class BlindIndexEntry(Base):
    """One blind-index value of one member: a truncated keyed hash, never a value.

    Lookups use (name, value); ``root_version`` says which blind-index root
    computed it, so a root rotation can recompute entries while both are read.
    """

    __tablename__ = "case_blind_indexes"
    __table_args__ = (Index("ix_case_blind_indexes_name_value", "name", "value"),)

    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("case_members.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True, comment="Index name.")
    root_version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False, comment="Truncated HMAC."
    )
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)

    # Lets the unit of work insert a new member before its entries.
    member: Mapped[CaseMember] = orm_relationship()


class DuplicateAlert(Base):
    """Two cases of different offices that may register the same person.

    The pair is stored in id order so it is recorded once. Holders of
    ``alerts:cross-office`` see alerts whose cases sit in different offices;
    office staff see only alerts whose two cases are both in their office
    (after a hand-off brought them together).
    """

    __tablename__ = "duplicate_alerts"
    __table_args__ = (UniqueConstraint("case_id", "other_case_id", "matched_on"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"))
    other_case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    matched_on: Mapped[str] = mapped_column(
        String(32),
        comment="What matched: document_number, name_birth_year or name_variant (never a value).",
    )
    score: Mapped[float | None] = mapped_column(
        Float, comment="Match score 0-1 when raised (casework.cases.duplicates.THRESHOLD)."
    )
    version: Mapped[int] = mapped_column(
        Integer, default=1, server_default="1", comment="ETag; bumped by every review."
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("id", uuid.uuid4())
        super().__init__(**kwargs)


class ErasureRequest(ClientIdMixin, Base):
    """A supervisor's request to erase a case, which another supervisor of the office decides.

    The reason is sealed under the case's data key, so the shred that makes the
    case unrecoverable destroys it too. ``status`` is the stored decision;
    a pending request past ``expires_at`` reads as expired and can no longer
    be decided.
    """

    __tablename__ = "erasure_requests"

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    office_code: Mapped[str] = mapped_column(
        String(32), ForeignKey("offices.code"), index=True, comment="The case's office at request."
    )
    status: Mapped[str] = mapped_column(
        String(16), comment="pending, approved, rejected, cancelled."
    )
    reason = sealed_text(512)
    requested_by: Mapped[str] = mapped_column(String(64), comment="User id of the requester.")
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64), comment="User id of the decider.")
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1, comment="Bumped by every write.")

    case: Mapped[Case] = orm_relationship()

    def __repr__(self) -> str:
        return f"ErasureRequest(id={self.id!s}, status={self.status!r})"


class DuplicateCheck(Base):
    """A case waiting to be compared with the other offices' cases.

    Every intake and every on-demand check queues one row, match or not, so an
    office's request costs the same whatever another office holds; the
    comparison runs outside it (:func:`casework.cases.duplicates.scan_pending`).
    """

    __tablename__ = "duplicate_checks"

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    queued_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
