"""The workflow's vocabulary: vetting checks and their statuses, resettlement submissions,
hand-off kinds.

The guards read these values, so they live with the workflow, below the
vetting and hand-off features that record them (a lower floor never imports a
higher one).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class CheckType(StrEnum):
    """The vetting checks; each has its own statuses below."""

    IDENTITY_VERIFICATION = "identity_verification"
    SECURITY_SCREENING = "security_screening"
    MEDICAL_EXAMINATION = "medical_examination"
    CREDIBILITY_ASSESSMENT = "credibility_assessment"


class IdentityVerification(StrEnum):
    """Identity verification, including the review of duplicate alerts."""

    PENDING = "pending"
    VERIFIED = "verified"
    NOT_VERIFIED = "not_verified"


class SecurityScreening(StrEnum):
    PENDING = "pending"
    CLEARED = "cleared"
    FLAGGED = "flagged"


class MedicalExamination(StrEnum):
    """Fitness to travel is recorded beside ``completed``."""

    PENDING = "pending"
    COMPLETED = "completed"


class CredibilityAssessment(StrEnum):
    PENDING = "pending"
    CREDIBLE = "credible"
    PARTIALLY_CREDIBLE = "partially_credible"
    NOT_CREDIBLE = "not_credible"


CHECK_STATUSES: Mapping[CheckType, type[StrEnum]] = MappingProxyType(
    {
        CheckType.IDENTITY_VERIFICATION: IdentityVerification,
        CheckType.SECURITY_SCREENING: SecurityScreening,
        CheckType.MEDICAL_EXAMINATION: MedicalExamination,
        CheckType.CREDIBILITY_ASSESSMENT: CredibilityAssessment,
    }
)
"""The statuses of each check; ``pending`` (the first) means not complete."""


class Priority(StrEnum):
    """Resettlement submission priority (UNHCR: emergency within days, urgent within weeks)."""

    EMERGENCY = "emergency"
    URGENT = "urgent"
    NORMAL = "normal"


class SubmissionCategory(StrEnum):
    """UNHCR resettlement submission categories; a submission has one or two."""

    LEGAL_PHYSICAL_PROTECTION_NEEDS = "legal_physical_protection_needs"
    SURVIVORS_OF_VIOLENCE_TORTURE = "survivors_of_violence_torture"
    MEDICAL_NEEDS = "medical_needs"
    WOMEN_AND_GIRLS_AT_RISK = "women_and_girls_at_risk"
    RESTORING_FAMILY_UNITY = "restoring_family_unity"
    CHILDREN_ADOLESCENTS_AT_RISK = "children_adolescents_at_risk"
    LACK_OF_FORESEEABLE_ALTERNATIVE_DURABLE_SOLUTIONS = (
        "lack_of_foreseeable_alternative_durable_solutions"
    )


MAX_SUBMISSION_CATEGORIES = 2


class HandoffKind(StrEnum):
    """To another office of this deployment, or to a partner organisation outside it."""

    OFFICE = "office"
    PARTNER = "partner"
