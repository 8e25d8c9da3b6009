"""Workflow state of each case: one row per case, created by the first workflow write.

Plaintext holds what the engine and access control need and what reveals
nothing about the person: process states (as ``cases.stage`` does) and the
user ids of staff who took four-eyes steps (staff ids, not beneficiary data).
Everything about the person's fate is sealed under the case's data key
(:mod:`casework.security.columns`): status determination outcomes, the
resettlement state's decision, the submission (destination, priority,
categories), the best-interests assessment and the reasons for closing and
reopening. Intake writes no row, so registering a case costs nothing here;
a case without a row is in every process's initial state.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from casework.db import Base
from casework.security.columns import encrypted_fields, sealed_dict, sealed_text
from casework.timestamps import UtcDateTime, utcnow
from casework.workflow.machines import DeterminationStage, HandoffStatus, VettingState

_IDS = {"case_id_attr": "case_id", "row_id_attr": "case_id"}


class CaseWorkflow(Base):
    """The workflow state of one case (stage and resettlement stage live on ``cases``)."""

    __tablename__ = "case_workflows"

    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cases.id"), primary_key=True, comment="One row per case."
    )
    vetting: Mapped[str] = mapped_column(String(32), default=VettingState.NOT_STARTED.value)
    determination: Mapped[str] = mapped_column(
        String(32), default=DeterminationStage.REGISTERED.value
    )
    handoff_status: Mapped[str] = mapped_column(String(32), default=HandoffStatus.NONE.value)
    last_active_stage: Mapped[str | None] = mapped_column(
        String(32), comment="The active stage a closed or handed-off case left."
    )
    vetting_referred_by: Mapped[str | None] = mapped_column(
        String(64), comment="User id of who referred the vetting for review (four-eyes)."
    )
    assessment_authors: Mapped[list[str]] = mapped_column(
        JSON, default=list, comment="User ids of who drafted the RSD assessment (four-eyes)."
    )
    first_instance_decided_by: Mapped[str | None] = mapped_column(
        String(64), comment="User id of who took the first-instance RSD decision (four-eyes)."
    )
    rrf_preparers: Mapped[list[str]] = mapped_column(
        JSON, default=list, comment="User ids of who prepared the resettlement submission."
    )
    # Every value of each enum fits one block, so the stored size tells nothing.
    first_instance_outcome = sealed_text(32, **_IDS)
    appeal_outcome = sealed_text(32, **_IDS)
    state_decision = sealed_text(32, **_IDS)
    # {"destination_country", "priority", "categories"}: two categories fit one block.
    submission = sealed_dict(256, **_IDS)
    # {"completed_on": "YYYY-MM-DD"} once completed; null before.
    best_interests_assessment = sealed_dict(64, **_IDS)
    best_interests_note = sealed_text(256, **_IDS)
    # "<process>.<close|reopen>" -> the reason chosen, for the latest of each.
    reasons = sealed_dict(256, **_IDS)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def __init__(self, **kwargs: Any) -> None:
        # Defaults in Python too: the engine reads a new row before it is flushed.
        kwargs.setdefault("vetting", VettingState.NOT_STARTED.value)
        kwargs.setdefault("determination", DeterminationStage.REGISTERED.value)
        kwargs.setdefault("handoff_status", HandoffStatus.NONE.value)
        kwargs.setdefault("assessment_authors", [])
        kwargs.setdefault("rrf_preparers", [])
        kwargs.setdefault("updated_at", utcnow())
        super().__init__(**kwargs)
        # "No value" is sealed too (an encrypted, padded null), never SQL NULL.
        for field in encrypted_fields(type(self)):
            if field.name not in kwargs:
                setattr(self, field.name, None)

    def __repr__(self) -> str:
        return f"CaseWorkflow(case_id={self.case_id!s})"
