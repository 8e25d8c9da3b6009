"""Vetting interviews and checks, and the reviews of duplicate alerts.

Plaintext is what access control and four-eyes need: ids, the case, the
interviewer's and recorder's user ids, which check a row holds, versions and
times. Everything about the people is sealed under the case's data key
(:mod:`casework.security.columns`): interviewed members, dates, interpreter,
notes, and the checks' statuses and findings too, because a "flagged" security
screening or a medical result is special-category data on its own.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from casework.db import Base
from casework.security.columns import (
    ClientIdMixin,
    sealed_date,
    sealed_dict,
    sealed_list,
    sealed_text,
)
from casework.timestamps import UtcDateTime, utcnow

USER_ID_LENGTH = 64


class VettingInterview(ClientIdMixin, Base):
    """One vetting interview of one or more members: scheduled, then recorded."""

    __tablename__ = "vetting_interviews"

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    interviewer_id: Mapped[str] = mapped_column(
        String(USER_ID_LENGTH),
        comment="User id of the interviewer; plaintext because four-eyes needs it.",
    )
    recorded_by: Mapped[str | None] = mapped_column(
        String(USER_ID_LENGTH),
        comment="User id of whoever recorded the interview as conducted; null while scheduled.",
    )
    # Up to 5 member ids fill one 256-byte block.
    members = sealed_list(256)
    scheduled_for = sealed_text(48)
    conducted_on = sealed_date(16)
    # {"used": bool, "language": str | null}
    interpreter = sealed_dict(64)
    notes = sealed_text(256)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"VettingInterview(id={self.id!s})"

    @property
    def is_recorded(self) -> bool:
        return self.recorded_by is not None


class VettingCheck(ClientIdMixin, Base):
    """The current result of one check of a case; one row per (case, check)."""

    __tablename__ = "vetting_checks"
    __table_args__ = (UniqueConstraint("case_id", "check_type"),)

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"))
    check_type: Mapped[str] = mapped_column(
        String(32), comment="identity_verification, security_screening, ..."
    )
    # {"status": str, "fit_to_travel": bool | null}: one block for every value.
    result = sealed_dict(64)
    findings = sealed_text(256)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"VettingCheck(id={self.id!s}, check={self.check_type!r})"


class DuplicateAlertReview(ClientIdMixin, Base):
    """One office's review of a duplicate alert, from the side of its own case.

    Deleted with its alert (erasure deletes the alerts naming an erased case).
    """

    __tablename__ = "duplicate_alert_reviews"
    __table_args__ = (UniqueConstraint("alert_id", "case_id"),)

    alert_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("duplicate_alerts.id", ondelete="CASCADE")
    )
    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cases.id"), index=True, comment="The reviewing side's case."
    )
    reviewed_by: Mapped[str] = mapped_column(String(USER_ID_LENGTH))
    reviewed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    outcome = sealed_text(32)
    notes = sealed_text(256)

    def __repr__(self) -> str:
        return f"DuplicateAlertReview(id={self.id!s})"
