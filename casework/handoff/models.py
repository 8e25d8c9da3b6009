"""Consent records, partner organisations, and hand-offs of a case.

Consent records are case data: everything but their ids is sealed under the
case's data key (who consented, to what, for whom, which fields, when, and the
withdrawal), so a stolen database shows only that a case has some records.
Partners and hand-offs hold no personal data: codes, keys, offices, user ids,
statuses and times, which the workflow and access control need in plaintext.
A partner package is ciphertext sealed to the partner; it is kept only until
it is downloaded.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.orm import relationship as orm_relationship

from casework.cases.models import Case
from casework.db import Base
from casework.security.columns import ClientIdMixin, sealed_dict, sealed_list
from casework.timestamps import UtcDateTime, utcnow
from casework.workflow.machines import HandoffStatus

# A consent holds up to 200 field names: 512-byte blocks leak its size only coarsely.
CONSENT_BLOCK = 512
WITHDRAWAL_BLOCK = 128


RECORD_STATUSES = tuple(status for status in HandoffStatus if status is not HandoffStatus.NONE)
"""Where one hand-off record stands: the hand-off process's states, less ``none``."""

OPEN_STATUSES = frozenset({HandoffStatus.REQUESTED, HandoffStatus.APPROVED})


class ConsentRow(ClientIdMixin, Base):
    """One consent given by one member of a case; only the ids are plaintext.

    ``consent`` is the record as given (purpose, recipients, member, dates,
    field names, who recorded it) and never changes; ``withdrawal`` is null
    until the consent is withdrawn (when, by whom). Both are padded so the two
    states look alike.
    """

    __tablename__ = "handoff_consents"

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    consent = sealed_dict(CONSENT_BLOCK)
    withdrawal = sealed_dict(WITHDRAWAL_BLOCK)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("withdrawal", None)  # sealed null until withdrawn
        super().__init__(**kwargs)

    def __repr__(self) -> str:
        return f"ConsentRow(id={self.id!s})"


class Partner(Base):
    """A partner organisation outside the deployment and the keys that bind it.

    ``public_key`` (X25519) is what packages to the partner are sealed to;
    ``verify_key`` (Ed25519) checks packages the partner sends us, when it runs
    casework too. Deactivated partners receive nothing new.
    """

    __tablename__ = "handoff_partners"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    code: Mapped[str] = mapped_column(String(64), unique=True, comment="Stable partner code.")
    name: Mapped[str] = mapped_column(String(200), comment="The organisation's name.")
    public_key: Mapped[bytes] = mapped_column(
        LargeBinary, comment="X25519 public key (32 raw bytes) packages are sealed to."
    )
    verify_key: Mapped[bytes | None] = mapped_column(
        LargeBinary, comment="Ed25519 key (32 raw bytes) that signs packages from the partner."
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str | None] = mapped_column(String(64), comment="User id.")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("id", uuid.uuid4())
        super().__init__(**kwargs)


class Handoff(Base):
    """One hand-off of a case, to another office or to a partner.

    The case's hand-off process state says where the latest one stands; this
    row says to whom, who asked, who approved, how it ended, and holds the
    partner package until its single download.
    """

    __tablename__ = "handoffs"
    __table_args__ = (
        Index("ix_handoffs_case_id_requested_at", "case_id", "requested_at"),
        Index("ix_handoffs_from_office", "from_office"),
        Index("ix_handoffs_to_office", "to_office"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"))
    kind: Mapped[str] = mapped_column(String(16), comment="office or partner.")
    status: Mapped[str] = mapped_column(String(16))
    from_office: Mapped[str] = mapped_column(
        String(32), ForeignKey("offices.code"), comment="Owning office when requested."
    )
    to_office: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("offices.code"), comment="Receiving office (kind office)."
    )
    partner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("handoff_partners.id"), comment="Receiving partner (kind partner)."
    )
    requested_by: Mapped[str] = mapped_column(String(64), comment="User id.")
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    approved_by: Mapped[str | None] = mapped_column(String(64), comment="User id.")
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_by: Mapped[str | None] = mapped_column(
        String(64), comment="User id of whoever accepted, declined, revoked or sent it."
    )
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    package: Mapped[bytes | None] = mapped_column(
        LargeBinary, comment="Partner package (sealed to the partner) until downloaded."
    )
    # The names (never values) of the fields the package carries, sealed like case data.
    package_fields = sealed_list(256)
    package_built_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    package_downloaded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    package_downloaded_by: Mapped[str | None] = mapped_column(String(64), comment="User id.")

    case: Mapped[Case] = orm_relationship()
    partner: Mapped[Partner | None] = orm_relationship()

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("id", uuid.uuid4())
        kwargs.setdefault("package_fields", None)  # sealed null, never SQL NULL
        super().__init__(**kwargs)

    @property
    def target(self) -> str:
        """The receiving office code or partner code, as the workflow guards see it."""
        if self.partner is not None:
            return self.partner.code
        return self.to_office or ""
