"""The reports' vocabulary: report names, age bands, event steps, retention states.

Enum values are a contract that clients and publication pipelines build
against: never rename one, only add.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class ReportName(StrEnum):
    """The published reports (``GET /api/v1/reports/{name}``)."""

    CASES_BY_OFFICE_STAGE = "cases-by-office-stage"
    PEOPLE_BY_SEX_AGE_NEEDS = "people-by-sex-age-needs"
    CHILDREN_BY_REGISTRATION_NATIONALITY = "children-by-registration-nationality"
    RESETTLEMENT_FUNNEL = "resettlement-funnel"
    DECISION_OUTCOMES = "decision-outcomes"


class AgeBand(StrEnum):
    """UNHCR's age bands; ``unknown`` when no birth year is recorded."""

    AGE_0_4 = "0-4"
    AGE_5_11 = "5-11"
    AGE_12_17 = "12-17"
    AGE_18_59 = "18-59"
    AGE_60_PLUS = "60+"
    UNKNOWN = "unknown"


CHILD_BANDS = frozenset({AgeBand.AGE_0_4.value, AgeBand.AGE_5_11.value, AgeBand.AGE_12_17.value})
NO_NEEDS = "none"
"""The specific-needs category of a person whose household has no specific need."""


def age_band(birth_year: int | None, reference_year: int) -> AgeBand:
    """The band of someone born in ``birth_year`` (age in whole years at ``reference_year``)."""
    if birth_year is None:
        return AgeBand.UNKNOWN
    age = reference_year - birth_year
    if age < 0:
        return AgeBand.UNKNOWN
    for limit, band in ((4, AgeBand.AGE_0_4), (11, AgeBand.AGE_5_11), (17, AgeBand.AGE_12_17)):
        if age <= limit:
            return band
    return AgeBand.AGE_18_59 if age <= 59 else AgeBand.AGE_60_PLUS


class FunnelStep(StrEnum):
    """Resettlement steps counted in the funnel: the months a case reached each."""

    SUBMITTED = "submitted"
    STATE_DECISION = "state_decision"
    DEPARTED = "departed"
    ARRIVED = "arrived"


class Decision(StrEnum):
    """The decisions counted by outcome: vetting, first-instance RSD, RSD appeal."""

    VETTING = "vetting"
    DETERMINATION = "determination"
    APPEAL = "appeal"


NO_CATEGORY = "none"
"""The submission category of a resettlement event whose submission names none."""


class RetentionState(StrEnum):
    """The case states a retention policy gives a period to."""

    CLOSED = "closed"
    HANDED_OFF = "handed_off"
    ARRIVED = "arrived"


class PolicyStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    DISCARDED = "discarded"


#: HXL hashtags (https://hxlstandard.org) of every column a report's CSV can carry.
HXL_TAGS: Mapping[str, str] = MappingProxyType(
    {
        "office": "#adm1+code",
        "month": "#date+month",
        "stage": "#status+stage",
        "sex": "#sex",
        "age_band": "#age+band",
        "needs": "#indicator+needs",
        "birth_registration": "#indicator+birth_registration",
        "nationality_status": "#indicator+nationality",
        "category": "#indicator+category",
        "step": "#status+step",
        "decision": "#indicator+decision",
        "outcome": "#status+outcome",
        "count": "#affected+num",
        "suppressed": "#meta+suppressed",
    }
)
