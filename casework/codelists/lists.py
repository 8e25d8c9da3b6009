"""Which code lists exist, their values and English labels.

A list is a feature's vocabulary (its ``codes.py`` enum) under a stable name. The
English label is the catalog's message id; ``msgctxt`` is the list's name, because
one English word ("Other", "Rejected") may need different translations in different
lists. A test checks that every enumeration in the OpenAPI document is one of these
lists and that every label has a translation in every shipped language.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from babel import Locale
from babel.core import get_global

from casework import i18n
from casework.audit.actions import AuditAction, Outcome
from casework.authz.permissions import STAFF_ROLES
from casework.cases import codes as case_codes
from casework.sync import codes as sync_codes
from casework.vetting.schemas import InterviewStatus
from casework.vetting.schemas import ReviewOutcome as AlertReviewOutcome
from casework.workflow import codes as workflow_codes
from casework.workflow import machines
from casework.workflow.consent import ConsentPurpose

# Labels that capitalising the value would get wrong (acronyms, terms of art).
_ENGLISH: Mapping[str, str] = MappingProxyType(
    {
        "rrf_preparation": "RRF preparation",
        "unhcr_registration": "UNHCR registration",
        "national_id": "National ID",
        "refugee_id": "Refugee ID",
        "rrf_preparer": "RRF preparer",
        "recognized": "Recognised",
        "handed_off": "Handed off",
        "handoff": "Hand-off",
        "case_stage": "Case stage",
        "name_birth_year": "Name and birth year",
        "name_variant": "Name (spelling variant) and birth year",
        "lack_of_foreseeable_alternative_durable_solutions": (
            "Lack of foreseeable alternative durable solutions"
        ),
        "survivors_of_violence_torture": "Survivors of violence and/or torture",
        "children_adolescents_at_risk": "Children and adolescents at risk",
        "legal_physical_protection_needs": "Legal and/or physical protection needs",
        "non_relative": "Non-relative",
        "registered_no_certificate": "Registered, no certificate",
        "auth.mfa_enrol": "Auth MFA enrol",
        "auth.mfa_confirm": "Auth MFA confirm",
        "user.mfa_reset": "User MFA reset",
        "auth.mfa_remove": "Auth MFA remove",
        "json": "JSON",
        "csv": "CSV",
    }
)


def english(value: str) -> str:
    """The English label of a value: its words, capitalised (``case.read`` -> ``Case read``)."""
    if value in _ENGLISH:
        return _ENGLISH[value]
    words = value.replace(".", " ").replace("_", " ")
    return words[:1].upper() + words[1:]


@dataclass(frozen=True)
class CodeList:
    """A named list: value -> English label, in the order the API documents them."""

    name: str
    description: str
    labels: Mapping[str, str]
    translated_by: str = "gettext"  # "gettext": the catalogs; "cldr": Babel's locale data


def _from_enum(name: str, description: str, values: Iterable[str]) -> CodeList:
    return CodeList(name, description, MappingProxyType({v: english(v) for v in values}))


def _enum(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


def _needs() -> list[CodeList]:
    catalogue = case_codes.needs_catalogue()
    needs = {code: need.label for code, need in catalogue.needs.items()}
    return [
        CodeList("specific_needs", "UNHCR specific-needs codes.", MappingProxyType(needs)),
        CodeList(
            "specific_need_families",
            "Families of the specific-needs codes.",
            MappingProxyType(dict(catalogue.families)),
        ),
    ]


def _countries() -> CodeList:
    return CodeList(
        "countries",
        "Country of origin: ISO 3166-1 alpha-3 codes and ICAO travel-document codes.",
        case_codes.countries(),
        translated_by="cldr",
    )


@functools.cache
def code_lists() -> Mapping[str, CodeList]:
    """Every code list by name (built once; the needs catalogue is fixed at start-up)."""
    simple = [
        ("roles", "Staff roles.", list(STAFF_ROLES)),
        ("stages", "Where a case is in its life.", _enum(case_codes.Stage)),
        ("resettlement_stages", "Resettlement progress.", _enum(case_codes.ResettlementStage)),
        (
            "relationships",
            "Relationship to the principal applicant.",
            _enum(case_codes.Relationship),
        ),
        ("sexes", "Sex as recorded.", _enum(case_codes.Sex)),
        ("document_types", "Kinds of identity document.", _enum(case_codes.DocumentType)),
        (
            "birth_registration",
            "How far a child's birth is registered.",
            _enum(case_codes.BirthRegistration),
        ),
        (
            "nationality_statuses",
            "A child's nationality status.",
            _enum(case_codes.NationalityStatus),
        ),
        (
            "registration_decisions",
            "Whether to register a birth that may expose a parent.",
            _enum(case_codes.RegistrationDecision),
        ),
        ("processes", "Workflow processes.", _enum(machines.Process)),
        ("vetting_states", "Vetting of a case.", _enum(machines.VettingState)),
        (
            "determination_stages",
            "Refugee status determination stages.",
            _enum(machines.DeterminationStage),
        ),
        (
            "determination_outcomes",
            "First-instance determination outcomes.",
            _enum(machines.DeterminationOutcome),
        ),
        ("appeal_outcomes", "Appeal outcomes.", _enum(machines.AppealOutcome)),
        (
            "submission_review_outcomes",
            "Outcomes of a resettlement submission's review.",
            _enum(machines.ReviewOutcome),
        ),
        ("state_decisions", "A resettlement state's decision.", _enum(machines.StateDecision)),
        ("handoff_statuses", "Status of a hand-off.", _enum(machines.HandoffStatus)),
        ("closure_reasons", "Why a case is closed.", _enum(machines.ClosureReason)),
        ("reopen_reasons", "Why a case is reopened.", _enum(machines.ReopenReason)),
        ("check_types", "Vetting checks.", _enum(workflow_codes.CheckType)),
        (
            "identity_verification_statuses",
            "Statuses of identity verification.",
            _enum(workflow_codes.IdentityVerification),
        ),
        (
            "security_screening_statuses",
            "Statuses of security screening.",
            _enum(workflow_codes.SecurityScreening),
        ),
        (
            "medical_examination_statuses",
            "Statuses of the medical examination.",
            _enum(workflow_codes.MedicalExamination),
        ),
        (
            "credibility_assessment_statuses",
            "Statuses of the credibility assessment.",
            _enum(workflow_codes.CredibilityAssessment),
        ),
        ("interview_statuses", "Statuses of a vetting interview.", _enum(InterviewStatus)),
        (
            "alert_review_outcomes",
            "What a review of a duplicate alert found.",
            _enum(AlertReviewOutcome),
        ),
        (
            "alert_match_kinds",
            "What a duplicate alert matched on.",
            ["document_number", "name_birth_year", "name_variant"],
        ),
        ("priorities", "Resettlement submission priority.", _enum(workflow_codes.Priority)),
        (
            "submission_categories",
            "Resettlement submission categories.",
            _enum(workflow_codes.SubmissionCategory),
        ),
        ("handoff_kinds", "Where a case is handed.", _enum(workflow_codes.HandoffKind)),
        ("consent_purposes", "What a person consented to.", _enum(ConsentPurpose)),
        (
            "erasure_request_statuses",
            "Where a request to erase a case stands.",
            _enum(case_codes.ErasureStatus),
        ),
        ("report_formats", "Formats of a published report.", ["json", "csv"]),
        ("sync_change_ops", "Kinds of change in the sync feed.", _enum(sync_codes.ChangeOp)),
        (
            "sync_mutation_ops",
            "Kinds of offline change a device pushes.",
            _enum(sync_codes.MutationOp),
        ),
        (
            "sync_mutation_statuses",
            "What became of a pushed offline change.",
            _enum(sync_codes.MutationStatus),
        ),
        ("sync_conflict_keep", "How a sync conflict is resolved.", _enum(sync_codes.Keep)),
        ("audit_actions", "Actions in the access log.", _enum(AuditAction)),
        ("audit_outcomes", "Outcomes in the access log.", _enum(Outcome)),
    ]
    lists = [_from_enum(name, description, values) for name, description, values in simple]
    lists += [*_needs(), _countries()]
    return MappingProxyType({code_list.name: code_list for code_list in lists})


def localised(code_list: CodeList) -> list[dict[str, str]]:
    """The list's entries with labels in the request's language."""
    if code_list.translated_by == "cldr":
        return [{"value": v, "label": country_name(v, en)} for v, en in code_list.labels.items()]
    return [
        {"value": v, "label": i18n.label(code_list.name, en)} for v, en in code_list.labels.items()
    ]


def country_name(alpha3: str, english_name: str) -> str:
    """A country's name from CLDR (through Babel) in the request's language; the shipped
    English name for English and for the codes CLDR has no territory for (XXA ...)."""
    language = i18n.current_language()
    alpha2 = _alpha2().get(alpha3)
    if alpha2 is None:  # XXA, XXB, XXC: ICAO's codes, translated in the catalogs
        return i18n.label("countries", english_name)
    if language == i18n.DEFAULT:
        return english_name
    return str(Locale.parse(language).territories.get(alpha2, english_name))


@functools.cache
def _alpha2() -> Mapping[str, str]:
    """ISO alpha-3 -> alpha-2, from CLDR's territory aliases (``SYR`` -> ``SY``)."""
    aliases = get_global("territory_aliases")
    named = Locale.parse("en").territories
    return MappingProxyType(
        {
            code: targets[0]
            for code, targets in aliases.items()
            if len(code) == 3 and code.isalpha() and len(targets) == 1 and targets[0] in named
        }
    )
