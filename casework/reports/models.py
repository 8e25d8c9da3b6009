"""What reports and retention keep: decision events, the retention policy, legal holds,
retention tombstones.

A :class:`ReportEvent` remembers the month a case reached a step the reports
count (a resettlement submission, a state decision, a departure, an arrival,
a vetting or status decision). Only its time is plaintext; which step, which
outcome and which submission categories are sealed under the case's data key,
so erasure (crypto-shredding) destroys them with the case, and the erasure
hook deletes the rows.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from casework.db import Base
from casework.reports.codes import PolicyStatus
from casework.security.columns import ClientIdMixin, sealed_dict, sealed_text
from casework.timestamps import UtcDateTime, utcnow

USER_ID_LENGTH = 64


class ReportEvent(ClientIdMixin, Base):
    """One counted step of one case: when (plaintext), what (sealed)."""

    __tablename__ = "report_events"

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    occurred_at: Mapped[datetime] = mapped_column(
        UtcDateTime, index=True, comment="When the step was taken; reports count by its month."
    )
    # {"kind": "funnel"|"decision", "step"|"decision": ..., "outcome": ..., "categories": [...]}
    details = sealed_dict(256)

    def __repr__(self) -> str:
        return f"ReportEvent(id={self.id!s})"


class RetentionPolicy(Base):
    """One proposal of the retention policy; the newest row's id is the policy's version.

    ``rules`` maps a retention state to a period in days. A proposal becomes
    active only when an administrator other than its proposer approves it; a
    proposal from configuration has no proposer until an administrator adopts it.
    """

    __tablename__ = "retention_policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rules: Mapped[dict[str, int]] = mapped_column(
        JSON, comment="Retention state -> days after the case's last change."
    )
    status: Mapped[str] = mapped_column(String(16), default=PolicyStatus.PENDING.value)
    proposed_by: Mapped[str | None] = mapped_column(
        String(USER_ID_LENGTH), comment="User id of the proposer; null for configuration's."
    )
    proposed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    approved_by: Mapped[str | None] = mapped_column(String(USER_ID_LENGTH))
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("status", PolicyStatus.PENDING.value)
        kwargs.setdefault("proposed_at", utcnow())
        super().__init__(**kwargs)

    def __repr__(self) -> str:
        return f"RetentionPolicy(id={self.id!r}, status={self.status!r})"


class LegalHold(Base):
    """A case's legal hold: while ``is_held``, retention never erases it."""

    __tablename__ = "legal_holds"

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    is_held: Mapped[bool] = mapped_column(Boolean, default=False)
    # The reason may name people or proceedings: sealed, and shredded with the case.
    reason = sealed_text(256, case_id_attr="case_id", row_id_attr="case_id")
    changed_by: Mapped[str] = mapped_column(String(USER_ID_LENGTH))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"LegalHold(case_id={self.case_id!s}, held={self.is_held!r})"


class RetentionTombstone(Base):
    """What retention leaves of an erased case: reference, office, dates, and the policy."""

    __tablename__ = "retention_tombstones"

    reference: Mapped[str] = mapped_column(String(11), primary_key=True)
    office_code: Mapped[str] = mapped_column(String(32))
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    erased_at: Mapped[datetime] = mapped_column(UtcDateTime)
    policy_id: Mapped[int] = mapped_column(
        ForeignKey("retention_policies.id"),
        comment="The approved policy whose proposer and approver were the two people.",
    )

    def __repr__(self) -> str:
        return f"RetentionTombstone(reference={self.reference!r})"
