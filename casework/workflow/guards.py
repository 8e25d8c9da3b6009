"""Guards: named conditions over a plain snapshot of a case's workflow facts.

:class:`CaseFacts` holds only what the rules need (states, check statuses, who
did what, consent records), never names or narratives, so the guards are pure
functions that can be tested without a database and explained to a client by
name. Each guard has a message saying why a transition is refused; messages
name rules, never values, so they are safe in an error response.

Every guard fails closed: a missing fact (no submission, no hand-off, no
recorded interview) makes the guard false rather than vacuously true, except
where the rule is explicitly conditional (a best-interests assessment is
needed only for a child at risk; partner consent only for a partner hand-off).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING

from casework.authz.permissions import Permission
from casework.cases import codes
from casework.cases.codes import ResettlementStage, Stage
from casework.workflow.codes import (
    MAX_SUBMISSION_CATEGORIES,
    CheckType,
    CredibilityAssessment,
    HandoffKind,
    IdentityVerification,
    MedicalExamination,
    Priority,
    SecurityScreening,
    SubmissionCategory,
)
from casework.workflow.consent import (
    PARTNER_PURPOSES,
    ConsentPurpose,
    ConsentRecord,
    has_valid_consent,
)
from casework.workflow.machines import (
    ACTIVE_STAGES,
    COMPANIONS,
    AppealOutcome,
    DeterminationOutcome,
    DeterminationStage,
    HandoffStatus,
    Process,
    StateDecision,
    Transition,
    VettingState,
    find_transition,
)

if TYPE_CHECKING:
    from casework.authz.access import Principal


# --- the facts' vocabulary ----------------------------------------------------------------


CHILD_AT_RISK_FAMILY = "SC"
"""Specific-needs family of unaccompanied and separated children (SC-UC, SC-SC, ...)."""

_POSITIVE_OUTCOMES = frozenset(
    {DeterminationOutcome.RECOGNIZED, DeterminationOutcome.DERIVATIVE_STATUS}
)
_NEGATIVE_OUTCOMES = frozenset({DeterminationOutcome.REJECTED, DeterminationOutcome.EXCLUDED})
_FINAL_RSD_STAGES = frozenset(
    {DeterminationStage.NOTIFIED, DeterminationStage.APPEAL_DECIDED, DeterminationStage.CLOSED}
)


def is_destination_country(code: object) -> bool:
    """An ISO 3166-1 alpha-3 code of a state: ICAO's XX* travel-document codes are not states."""
    return codes.is_valid_country(code) and isinstance(code, str) and not code.startswith("XX")


@dataclass(frozen=True, slots=True)
class Submission:
    """A resettlement submission as drafted; review needs it complete."""

    destination_country: str | None = None
    priority: Priority | None = None
    categories: tuple[SubmissionCategory, ...] = ()

    def __post_init__(self) -> None:
        if self.priority is not None:
            object.__setattr__(self, "priority", Priority(self.priority))
        object.__setattr__(
            self, "categories", tuple(SubmissionCategory(c) for c in self.categories)
        )

    @property
    def is_complete(self) -> bool:
        """A destination state, a priority, and one or two distinct categories."""
        count = len(self.categories)
        return (
            is_destination_country(self.destination_country)
            and self.priority is not None
            and 1 <= count <= MAX_SUBMISSION_CATEGORIES
            and len(set(self.categories)) == count
        )


@dataclass(frozen=True, slots=True)
class Handoff:
    """The case's latest hand-off (requested or past): to whom, asked and approved by whom."""

    kind: HandoffKind
    target: str
    requested_by: str
    approved_by: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", HandoffKind(self.kind))


@dataclass(frozen=True, slots=True)
class Actor:
    """Who attempts a transition: a user id, their permissions, their office."""

    user_id: str
    permissions: frozenset[Permission]
    office: str | None

    def __post_init__(self) -> None:
        if not self.user_id:
            raise ValueError("an actor is a user with an id")

    def has(self, permission: Permission) -> bool:
        return permission in self.permissions

    @classmethod
    def from_principal(cls, principal: Principal) -> Actor:
        """The actor for an authenticated staff user; devices take no workflow decisions."""
        if principal.user_id is None:
            raise ValueError("only a staff user can take workflow transitions")
        return cls(principal.user_id, principal.permissions, principal.office)


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """A case's workflow facts at ``now``: states, ids, statuses and the few decrypted
    values the rules need (specific-needs codes, consent records).

    Those values are special-category data, so they are left out of ``repr``:
    facts must never reach a log or an error. ``last_active_stage`` is the
    active stage a closed or handed-off case left. The people sets hold user
    ids: who conducted vetting interviews, wrote the RSD assessment, prepared
    the resettlement submission.
    ``appeal_outcome`` belongs to the current first-instance decision (the
    service clears it when a reopened file is decided again).
    """

    office: str
    now: datetime
    stage: Stage = Stage.INTAKE
    last_active_stage: Stage | None = None
    vetting: VettingState = VettingState.NOT_STARTED
    determination: DeterminationStage = DeterminationStage.REGISTERED
    resettlement: ResettlementStage = ResettlementStage.NOT_CONSIDERED
    handoff_status: HandoffStatus = HandoffStatus.NONE
    specific_needs: frozenset[str] = field(default=frozenset(), repr=False)
    identity_verification: IdentityVerification = IdentityVerification.PENDING
    security_screening: SecurityScreening = SecurityScreening.PENDING
    medical_examination: MedicalExamination = MedicalExamination.PENDING
    fit_to_travel: bool | None = None
    credibility_assessment: CredibilityAssessment = CredibilityAssessment.PENDING
    open_duplicate_alerts: int = 0
    vetting_interviewers: frozenset[str] = frozenset()
    vetting_referred_by: str | None = None
    assessment_authors: frozenset[str] = frozenset()
    first_instance_decided_by: str | None = None
    first_instance_outcome: DeterminationOutcome | None = None
    appeal_outcome: AppealOutcome | None = None
    rrf_preparers: frozenset[str] = frozenset()
    submission: Submission | None = None
    state_decision: StateDecision | None = None
    best_interests_assessment_done: bool = False
    consents: tuple[ConsentRecord, ...] = field(default=(), repr=False)
    handoff: Handoff | None = None

    def __post_init__(self) -> None:
        # Facts loaded from storage may carry plain strings: coerce them to the
        # enums, which also refuses a state the tables do not know.
        for name, enum in _ENUM_FIELDS.items():
            value = getattr(self, name)
            if value is not None and not isinstance(value, enum):
                object.__setattr__(self, name, enum(value))
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise ValueError("now must be a timezone-aware datetime")

    def state_of(self, process: Process) -> str:
        """The current state of ``process`` on this case."""
        state: str = getattr(self, _STATE_FIELDS[process])
        return state

    def check_status(self, check: CheckType) -> StrEnum:
        """The status of one vetting check."""
        statuses: dict[CheckType, StrEnum] = {
            CheckType.IDENTITY_VERIFICATION: self.identity_verification,
            CheckType.SECURITY_SCREENING: self.security_screening,
            CheckType.MEDICAL_EXAMINATION: self.medical_examination,
            CheckType.CREDIBILITY_ASSESSMENT: self.credibility_assessment,
        }
        return statuses[check]

    @property
    def checks_complete(self) -> bool:
        return all(self.check_status(c) != "pending" for c in CheckType)

    @property
    def status_recognized(self) -> bool:
        """Refugee status recognised by a notified decision, or on appeal."""
        if self.determination not in _FINAL_RSD_STAGES:
            return False
        return (
            self.first_instance_outcome in _POSITIVE_OUTCOMES
            or self.appeal_outcome == AppealOutcome.OVERTURNED
        )

    @property
    def child_at_risk(self) -> bool:
        return any(code.split("-")[0] == CHILD_AT_RISK_FAMILY for code in self.specific_needs)


_ENUM_FIELDS: Mapping[str, type[StrEnum]] = MappingProxyType(
    {
        "stage": Stage,
        "last_active_stage": Stage,
        "vetting": VettingState,
        "determination": DeterminationStage,
        "resettlement": ResettlementStage,
        "handoff_status": HandoffStatus,
        "identity_verification": IdentityVerification,
        "security_screening": SecurityScreening,
        "medical_examination": MedicalExamination,
        "credibility_assessment": CredibilityAssessment,
        "first_instance_outcome": DeterminationOutcome,
        "appeal_outcome": AppealOutcome,
        "state_decision": StateDecision,
    }
)

_STATE_FIELDS: Mapping[Process, str] = MappingProxyType(
    {
        Process.CASE_STAGE: "stage",
        Process.VETTING: "vetting",
        Process.DETERMINATION: "determination",
        Process.RESETTLEMENT: "resettlement",
        Process.HANDOFF: "handoff_status",
    }
)

# --- the guards ---------------------------------------------------------------------------

Check = Callable[[CaseFacts, Actor, Transition], bool]


@dataclass(frozen=True, slots=True)
class Guard:
    """A named condition and the message a client sees when it does not hold."""

    name: str
    message: str
    check: Check


_GUARDS: dict[str, Guard] = {}


def _guard(name: str, message: str) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        if name in _GUARDS:
            raise ValueError(f"guard {name!r} defined twice")
        _GUARDS[name] = Guard(name, message, check)
        return check

    return register


# Office scope


@_guard("actor_in_owning_office", "Only staff of the office that owns the case can do this.")
def _in_owning_office(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return a.office is not None and a.office == f.office


@_guard(
    "actor_in_receiving_office",
    "Only staff of the office the case is handed to can accept or decline it.",
)
def _in_receiving_office(f: CaseFacts, a: Actor, t: Transition) -> bool:
    h = f.handoff
    return (
        h is not None
        and h.kind == HandoffKind.OFFICE
        and a.office is not None
        and a.office == h.target
    )


# Case stage


@_guard("case_active", "The case is closed or handed off.")
def _case_active(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return f.stage in ACTIVE_STAGES


@_guard("case_in_vetting_stage", "The case is not at the vetting stage.")
def _in_vetting(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return f.stage == Stage.VETTING


@_guard("case_in_determination_stage", "The case is not at the determination stage.")
def _in_determination(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return f.stage == Stage.DETERMINATION


@_guard("case_in_resettlement_stage", "The case is not at the resettlement stage.")
def _in_resettlement(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return f.stage == Stage.RESETTLEMENT


@_guard(
    "reopen_not_beyond_last_stage",
    "A case is reopened at the stage it left or at an earlier one.",
)
def _reopen_not_beyond(f: CaseFacts, a: Actor, t: Transition) -> bool:
    order = [s.value for s in ACTIVE_STAGES]
    if t.to_state not in order:
        return False
    limit = order.index(f.last_active_stage) if f.last_active_stage in order else 0
    return order.index(t.to_state) <= limit


@_guard("companion_can_move", "The step also moves another process, which cannot move now.")
def _companion_can_move(f: CaseFacts, a: Actor, t: Transition) -> bool:
    other = COMPANIONS.get((t.process, t.to_state))
    if other is None:
        return True
    process, target = other
    return find_transition(process, f.state_of(process), target) is not None


# Vetting


@_guard("vetting_interview_recorded", "No vetting interview is recorded for the case.")
def _interview_recorded(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return bool(f.vetting_interviewers)


@_guard(
    "vetting_checks_complete",
    "Every vetting check (identity, security screening, medical examination, credibility) "
    "must be complete.",
)
def _checks_complete(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return f.checks_complete


@_guard("duplicate_alerts_reviewed", "Duplicate alerts on the case remain to be reviewed.")
def _alerts_reviewed(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return f.open_duplicate_alerts == 0


@_guard("identity_verified", "The identity is not verified.")
def _identity_verified(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return f.identity_verification == IdentityVerification.VERIFIED


@_guard("screening_cleared", "Security screening has not cleared the case.")
def _screening_cleared(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return f.security_screening == SecurityScreening.CLEARED


@_guard("screening_not_flagged", "Security screening has flagged the case.")
def _screening_not_flagged(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return f.security_screening != SecurityScreening.FLAGGED


@_guard("vetting_cleared", "Vetting has not cleared the case.")
def _vetting_cleared(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return f.vetting == VettingState.CLEARED


# Status determination


@_guard(
    "refugee_status_recognized",
    "Refugee status is not recognised by a notified decision or on appeal.",
)
def _status_recognized(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return f.status_recognized


@_guard(
    "first_instance_negative",
    "Only a negative first-instance decision (rejected or excluded) can be appealed.",
)
def _first_instance_negative(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return f.first_instance_outcome in _NEGATIVE_OUTCOMES


# Resettlement


@_guard(
    "submission_complete",
    "The submission needs a destination country (ISO 3166-1 alpha-3), a priority and one or "
    "two submission categories.",
)
def _submission_complete(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return f.submission is not None and f.submission.is_complete


@_guard("medical_examination_completed", "The medical examination is not completed.")
def _medical_completed(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return f.medical_examination == MedicalExamination.COMPLETED


@_guard("fit_to_travel", "The medical examination does not find the person fit to travel.")
def _fit_to_travel(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return f.medical_examination == MedicalExamination.COMPLETED and f.fit_to_travel is True


@_guard(
    "best_interests_assessed",
    "An unaccompanied or separated child (specific need SC-*) needs a completed "
    "best-interests assessment first.",
)
def _best_interests(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return not f.child_at_risk or f.best_interests_assessment_done


@_guard(
    "resettlement_consent",
    "No valid consent to a resettlement submission to the destination country.",
)
def _resettlement_consent(f: CaseFacts, a: Actor, t: Transition) -> bool:
    destination = f.submission.destination_country if f.submission else None
    if destination is None:
        return False
    return has_valid_consent(f.consents, ConsentPurpose.RESETTLEMENT_SUBMISSION, destination, f.now)


@_guard("state_decision_pending", "The state has not deferred or suspended its decision.")
def _decision_pending(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return f.state_decision in (StateDecision.DEFERRED, StateDecision.SUSPENDED)


@_guard(
    "state_decision_allows_resubmission",
    "A resubmission follows a denial, a withdrawal or a split decision.",
)
def _allows_resubmission(f: CaseFacts, a: Actor, t: Transition) -> bool:
    allowing = (StateDecision.DENIED, StateDecision.WITHDRAWN, StateDecision.SPLIT_DECISION)
    return f.state_decision in allowing


@_guard(
    "state_decision_allows_departure",
    "The state has not accepted the submission (in full or by a split decision).",
)
def _allows_departure(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return f.state_decision in (StateDecision.ACCEPTED, StateDecision.SPLIT_DECISION)


# Hand-off


@_guard(
    "handoff_target_valid",
    "A hand-off goes to an office other than the owning one, or to a partner organisation.",
)
def _target_valid(f: CaseFacts, a: Actor, t: Transition) -> bool:
    h = f.handoff
    if h is None or not h.target:
        return False
    return h.kind == HandoffKind.PARTNER or h.target != f.office


@_guard(
    "consent_for_partner",
    "A hand-off to a partner needs valid referral or data-sharing consent for that partner.",
)
def _consent_for_partner(f: CaseFacts, a: Actor, t: Transition) -> bool:
    h = f.handoff
    if h is None:
        return False
    if h.kind == HandoffKind.OFFICE:
        return True
    return any(has_valid_consent(f.consents, p, h.target, f.now) for p in PARTNER_PURPOSES)


@_guard("handoff_to_office", "This hand-off is not to another office.")
def _to_office(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return f.handoff is not None and f.handoff.kind == HandoffKind.OFFICE


@_guard("handoff_to_partner", "This hand-off is not to a partner organisation.")
def _to_partner(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return f.handoff is not None and f.handoff.kind == HandoffKind.PARTNER


@_guard("partner_handoff_approved", "No approved hand-off to a partner organisation.")
def _partner_approved(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return f.handoff_status == HandoffStatus.APPROVED and _to_partner(f, a, t)


# Four-eyes: the second person differs from the first


@_guard("not_vetting_interviewer", "Four-eyes: you conducted a vetting interview of this case.")
def _not_interviewer(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return a.user_id not in f.vetting_interviewers


@_guard("not_vetting_referrer", "Four-eyes: you referred this vetting for review.")
def _not_referrer(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return a.user_id != f.vetting_referred_by


@_guard("not_assessment_author", "Four-eyes: you wrote the status determination assessment.")
def _not_author(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return a.user_id not in f.assessment_authors


@_guard("not_first_instance_decider", "Four-eyes: you took the first-instance decision.")
def _not_first_decider(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return a.user_id != f.first_instance_decided_by


@_guard("not_rrf_preparer", "Four-eyes: you prepared this resettlement submission.")
def _not_preparer(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return a.user_id not in f.rrf_preparers


@_guard("not_handoff_requester", "Four-eyes: you requested this hand-off.")
def _not_requester(f: CaseFacts, a: Actor, t: Transition) -> bool:
    return f.handoff is not None and a.user_id != f.handoff.requested_by


GUARDS: Mapping[str, Guard] = MappingProxyType(_GUARDS)
"""Every guard by name."""


def unmet(transition: Transition, facts: CaseFacts, actor: Actor) -> tuple[str, ...]:
    """The names of ``transition``'s guards that do not hold, in table order.

    Raises KeyError for a guard the registry lacks (the engine checks every
    table against the registry at import, so this cannot happen in service).
    """
    return tuple(g for g in transition.guards if not GUARDS[g].check(facts, actor, transition))
