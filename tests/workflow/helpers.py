"""Builders for workflow facts and actors, shared by the workflow tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from casework.authz.permissions import Permission, permissions_for
from casework.cases.codes import ResettlementStage, Stage
from casework.workflow.codes import (
    CredibilityAssessment,
    HandoffKind,
    IdentityVerification,
    MedicalExamination,
    Priority,
    SecurityScreening,
    SubmissionCategory,
)
from casework.workflow.consent import ConsentPurpose, ConsentRecord
from casework.workflow.guards import Actor, CaseFacts, Handoff, Submission
from casework.workflow.machines import (
    DeterminationOutcome,
    DeterminationStage,
    HandoffStatus,
    VettingState,
)

OFFICE = "amm-01"
OTHER_OFFICE = "irb-02"
PARTNER = "PARTNER-A"
DESTINATION = "CAN"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MEMBER = "member-1"


def actor(role: str, user: str = "u-1", office: str | None = OFFICE) -> Actor:
    return Actor(user, permissions_for(role), office)


def actor_with(*permissions: Permission, user: str = "u-1", office: str | None = OFFICE) -> Actor:
    return Actor(user, frozenset(permissions), office)


def facts(**changes: Any) -> CaseFacts:
    values: dict[str, Any] = {"office": OFFICE, "now": NOW, **changes}
    return CaseFacts(**values)


def consent(
    purpose: ConsentPurpose = ConsentPurpose.RESETTLEMENT_SUBMISSION,
    recipient: str = DESTINATION,
    **changes: Any,
) -> ConsentRecord:
    values: dict[str, Any] = {
        "purpose": purpose,
        "recipients": frozenset({recipient}),
        "given_by": MEMBER,
        "given_at": NOW - timedelta(days=10),
        "expires_at": NOW + timedelta(days=365),
    }
    values.update(changes)
    return ConsentRecord(**values)


def complete_submission() -> Submission:
    return Submission(
        DESTINATION, Priority.NORMAL, (SubmissionCategory.LEGAL_PHYSICAL_PROTECTION_NEEDS,)
    )


def vetted(**changes: Any) -> CaseFacts:
    """A case whose vetting is done and cleared, by interviewer ``u-interviewer``."""
    base = facts(
        stage=Stage.VETTING,
        vetting=VettingState.CLEARED,
        identity_verification=IdentityVerification.VERIFIED,
        security_screening=SecurityScreening.CLEARED,
        medical_examination=MedicalExamination.COMPLETED,
        fit_to_travel=True,
        credibility_assessment=CredibilityAssessment.CREDIBLE,
        vetting_interviewers=frozenset({"u-interviewer"}),
    )
    return replace(base, **changes)


def recognised(**changes: Any) -> CaseFacts:
    """A vetted case with a notified positive status decision, at stage determination."""
    base = vetted(
        stage=Stage.DETERMINATION,
        determination=DeterminationStage.NOTIFIED,
        first_instance_outcome=DeterminationOutcome.RECOGNIZED,
        assessment_authors=frozenset({"u-author"}),
        first_instance_decided_by="u-decider",
    )
    return replace(base, **changes)


def ready_to_submit(**changes: Any) -> CaseFacts:
    """A recognised case at resettlement, RRF prepared by ``u-preparer``, with consent."""
    base = recognised(
        stage=Stage.RESETTLEMENT,
        resettlement=ResettlementStage.RRF_PREPARATION,
        submission=complete_submission(),
        consents=(consent(),),
        rrf_preparers=frozenset({"u-preparer"}),
    )
    return replace(base, **changes)


def with_handoff(
    kind: HandoffKind = HandoffKind.OFFICE,
    target: str = OTHER_OFFICE,
    status: HandoffStatus = HandoffStatus.REQUESTED,
    requested_by: str = "u-requester",
    **changes: Any,
) -> CaseFacts:
    base = facts(
        stage=Stage.DETERMINATION,
        handoff_status=status,
        handoff=Handoff(kind, target, requested_by),
    )
    return replace(base, **changes)
