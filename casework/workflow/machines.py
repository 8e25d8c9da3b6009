"""The workflow processes as data: states, choices and one transition table per process.

A transition is allowed when the actor holds its permission and every one of
its guards (named here, defined in :mod:`casework.workflow.guards`) holds. The
tables are the single source for the engine, for ``GET /api/v1/workflow`` and
for the ``allowed_transitions`` of a case, so what clients are shown and what
the server enforces cannot drift apart.

Two kinds of guard are added by the table builder rather than by hand, so that
no row can forget them: the office scope (the actor works in the owning office,
or in the receiving office for accepting a hand-off) and the case stage a
process runs in (vetting transitions only while the case is in ``vetting``...).
Four-eyes rules are guards too: ``four_eyes`` names the people the actor must
not be, and adds the matching ``not_<person>`` guards.

Enum values are a contract that clients build against: never rename one, only add.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from casework.authz.permissions import Permission
from casework.cases.codes import ResettlementStage, Stage

P = Permission


class Process(StrEnum):
    """The workflow processes; each has its own state on a case."""

    CASE_STAGE = "case_stage"
    VETTING = "vetting"
    DETERMINATION = "determination"
    RESETTLEMENT = "resettlement"
    HANDOFF = "handoff"


class VettingState(StrEnum):
    """Vetting of a case; the last three are the vetting decision."""

    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    CLEARED = "cleared"
    REFERRED_FOR_REVIEW = "referred_for_review"
    REJECTED = "rejected"


class DeterminationStage(StrEnum):
    """Refugee status determination (RSD) stages, as in UNHCR's procedural standards."""

    REGISTERED = "registered"
    INTERVIEW_SCHEDULED = "interview_scheduled"
    INTERVIEWED = "interviewed"
    ASSESSMENT_DRAFTED = "assessment_drafted"
    SUPERVISOR_REVIEW = "supervisor_review"
    DECIDED = "decided"
    NOTIFIED = "notified"
    APPEAL_LODGED = "appeal_lodged"
    APPEAL_DECIDED = "appeal_decided"
    CLOSED = "closed"
    REOPENED = "reopened"


class DeterminationOutcome(StrEnum):
    """First-instance RSD outcomes."""

    RECOGNIZED = "recognized"
    REJECTED = "rejected"
    EXCLUDED = "excluded"
    DERIVATIVE_STATUS = "derivative_status"


class AppealOutcome(StrEnum):
    """``upheld`` confirms the first-instance decision; ``overturned`` recognises status."""

    UPHELD = "upheld"
    OVERTURNED = "overturned"


class ReviewOutcome(StrEnum):
    """Outcomes of the review of a resettlement submission; each is a transition."""

    RECOMMENDED = "recommended"
    RETURNED_TO_CASEWORKER = "returned_to_caseworker"
    NOT_RECOMMENDED = "not_recommended"


class StateDecision(StrEnum):
    """What a resettlement state decided about a submission."""

    ACCEPTED = "accepted"
    DENIED = "denied"
    DEFERRED = "deferred"
    SUSPENDED = "suspended"
    SPLIT_DECISION = "split_decision"
    WITHDRAWN = "withdrawn"


class HandoffStatus(StrEnum):
    """The case's latest hand-off; ``none`` before the first one."""

    NONE = "none"
    REQUESTED = "requested"
    APPROVED = "approved"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    REVOKED = "revoked"
    SENT = "sent"


class ClosureReason(StrEnum):
    """Why a case (or an RSD file) is closed; ``local_integration`` and
    ``voluntary_repatriation`` are the local and home solutions."""

    RESETTLED = "resettled"
    LOCAL_INTEGRATION = "local_integration"
    VOLUNTARY_REPATRIATION = "voluntary_repatriation"
    DECISION_FINAL = "decision_final"
    WITHDRAWN = "withdrawn"
    ABANDONED = "abandoned"
    LOST_CONTACT = "lost_contact"
    DECEASED = "deceased"
    DUPLICATE = "duplicate"
    OTHER = "other"


class ReopenReason(StrEnum):
    """Why a closed case (or RSD file) is reopened."""

    NEW_INFORMATION = "new_information"
    RESUMED_CONTACT = "resumed_contact"
    REQUEST_OF_PERSON = "request_of_person"
    CLOSED_IN_ERROR = "closed_in_error"
    OTHER = "other"


class FourEyes(StrEnum):
    """The people an actor must not be for a decision (the first pair of eyes)."""

    VETTING_INTERVIEWER = "vetting_interviewer"
    VETTING_REFERRER = "vetting_referrer"
    ASSESSMENT_AUTHOR = "assessment_author"
    FIRST_INSTANCE_DECIDER = "first_instance_decider"
    RRF_PREPARER = "rrf_preparer"
    HANDOFF_REQUESTER = "handoff_requester"

    @property
    def guard(self) -> str:
        """The guard that enforces it: ``not_<person>``."""
        return f"not_{self.value}"


class Scope(StrEnum):
    """Which office an actor must work in to take a transition."""

    OWNING_OFFICE = "owning_office"
    RECEIVING_OFFICE = "receiving_office"


SCOPE_GUARDS: Mapping[Scope, str] = MappingProxyType(
    {
        Scope.OWNING_OFFICE: "actor_in_owning_office",
        Scope.RECEIVING_OFFICE: "actor_in_receiving_office",
    }
)

STATES: Mapping[Process, type[StrEnum]] = MappingProxyType(
    {
        Process.CASE_STAGE: Stage,
        Process.VETTING: VettingState,
        Process.DETERMINATION: DeterminationStage,
        Process.RESETTLEMENT: ResettlementStage,
        Process.HANDOFF: HandoffStatus,
    }
)

INITIAL_STATES: Mapping[Process, str] = MappingProxyType(
    {
        Process.CASE_STAGE: Stage.INTAKE,
        Process.VETTING: VettingState.NOT_STARTED,
        Process.DETERMINATION: DeterminationStage.REGISTERED,
        Process.RESETTLEMENT: ResettlementStage.NOT_CONSIDERED,
        Process.HANDOFF: HandoffStatus.NONE,
    }
)

# Every transition of a process also needs the case to be at the right stage.
PROCESS_GUARDS: Mapping[Process, tuple[str, ...]] = MappingProxyType(
    {
        Process.CASE_STAGE: (),
        Process.VETTING: ("case_in_vetting_stage",),
        Process.DETERMINATION: ("case_in_determination_stage",),
        Process.RESETTLEMENT: ("case_in_resettlement_stage",),
        Process.HANDOFF: ("case_active",),
    }
)


# Steps that move two processes at once: the engine checks both rows against the
# same facts, and the service applies both or neither. Sending a case to a partner is the only
# one: the hand-off becomes ``sent`` exactly when the case becomes ``handed_off``.
# Their rows get the ``companion_can_move`` guard.
COMPANIONS: Mapping[tuple[Process, str], tuple[Process, str]] = MappingProxyType(
    {
        (Process.HANDOFF, HandoffStatus.SENT): (Process.CASE_STAGE, Stage.HANDED_OFF),
        (Process.CASE_STAGE, Stage.HANDED_OFF): (Process.HANDOFF, HandoffStatus.SENT),
    }
)


@dataclass(frozen=True, slots=True)
class Choice:
    """A value the request for a transition must carry, e.g. ``reason`` for closing."""

    field: str
    values: tuple[str, ...]

    @classmethod
    def of(cls, field: str, enum: type[StrEnum]) -> Choice:
        return cls(field, tuple(member.value for member in enum))


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of a table: ``from_state`` -> ``to_state`` under a permission and guards.

    ``guards`` is complete (scope, stage and four-eyes guards included);
    ``four_eyes`` says for clients whom the actor must differ from.
    """

    process: Process
    from_state: str
    to_state: str
    name: str
    permission: Permission
    guards: tuple[str, ...]
    four_eyes: tuple[FourEyes, ...] = ()
    scope: Scope = Scope.OWNING_OFFICE
    choice: Choice | None = None


@dataclass(frozen=True, slots=True)
class _Row:
    """A table row as written below: source states separated by spaces, one target."""

    sources: str
    target: str
    name: str
    permission: Permission
    guards: tuple[str, ...] = ()
    four_eyes: tuple[FourEyes, ...] = ()
    scope: Scope = Scope.OWNING_OFFICE
    choice: Choice | None = None


def _build(process: Process, rows: Iterable[_Row]) -> tuple[Transition, ...]:
    """Expand rows to one transition per source state, adding scope, stage and four-eyes guards.

    Raises ValueError at import for a state the process does not have, so a
    typo in a table stops the service from starting.
    """
    states = {member.value for member in STATES[process]}
    table = []
    for row in rows:
        unknown = {*row.sources.split(), row.target} - states
        if unknown:
            raise ValueError(f"{process.value}: unknown states {sorted(unknown)}")
        guards = (
            SCOPE_GUARDS[row.scope],
            *PROCESS_GUARDS[process],
            *row.guards,
            *(person.guard for person in row.four_eyes),
            *(["companion_can_move"] if (process, row.target) in COMPANIONS else []),
        )
        table += [
            Transition(
                process,
                source,
                row.target,
                str(row.name),
                row.permission,
                tuple(dict.fromkeys(guards)),
                row.four_eyes,
                row.scope,
                row.choice,
            )
            for source in row.sources.split()
        ]
    return tuple(table)


# --- case stage ---------------------------------------------------------------------------

ACTIVE_STAGES = (Stage.INTAKE, Stage.VETTING, Stage.DETERMINATION, Stage.RESETTLEMENT)
"""Stages in which work happens, in the order a case normally passes them."""

# What must hold to be in a stage, whether a case moves forward into it or is reopened at it.
ENTRY_GUARDS: Mapping[Stage, tuple[str, ...]] = MappingProxyType(
    {
        Stage.INTAKE: (),
        Stage.VETTING: (),
        Stage.DETERMINATION: ("vetting_cleared",),
        Stage.RESETTLEMENT: (
            "vetting_cleared",
            "screening_not_flagged",
            "refugee_status_recognized",
        ),
    }
)

_CLOSE = Choice.of("reason", ClosureReason)
_REOPEN = Choice.of("reason", ReopenReason)
_ACTIVE = "intake vetting determination resettlement"
_REOPEN_GUARD = "reopen_not_beyond_last_stage"

_CASE_STAGE = [
    _Row("intake", "vetting", "start_vetting", P.CASES_WRITE),
    _Row("vetting", "determination", "refer_to_determination", P.CASES_WRITE,
         ENTRY_GUARDS[Stage.DETERMINATION]),
    _Row("determination", "resettlement", "refer_to_resettlement", P.RESETTLEMENT_PREPARE,
         ENTRY_GUARDS[Stage.RESETTLEMENT]),
    _Row("determination resettlement", "vetting", "return_to_vetting", P.VETTING_DECIDE),
    _Row(_ACTIVE, "handed_off", "hand_off_to_partner", P.HANDOFF_APPROVE,
         ("partner_handoff_approved",)),
    _Row(f"{_ACTIVE} handed_off", "closed", "close", P.CASES_CLOSE, choice=_CLOSE),
    *(
        _Row("closed handed_off", stage.value, "reopen", P.CASES_CLOSE,
             (_REOPEN_GUARD, *ENTRY_GUARDS[stage]), choice=_REOPEN)
        for stage in ACTIVE_STAGES
    ),
]  # fmt: skip

# --- vetting ------------------------------------------------------------------------------

_DECIDE = ("vetting_interview_recorded", "vetting_checks_complete", "duplicate_alerts_reviewed")
_CLEAR = (*_DECIDE, "identity_verified", "screening_cleared")
_FIRST = (FourEyes.VETTING_INTERVIEWER,)
_SECOND = (FourEyes.VETTING_INTERVIEWER, FourEyes.VETTING_REFERRER)
_V_DECIDE = P.VETTING_DECIDE

_VETTING = [
    _Row("not_started", "in_progress", "open_vetting", P.VETTING_CONDUCT),
    _Row("in_progress", "cleared", "clear", P.VETTING_DECIDE, _CLEAR, _FIRST),
    _Row("in_progress", "referred_for_review", "refer_for_review", _V_DECIDE, _DECIDE, _FIRST),
    _Row("in_progress", "rejected", "reject", P.VETTING_DECIDE, _DECIDE, _FIRST),
    _Row("referred_for_review", "cleared", "clear", P.VETTING_DECIDE, _CLEAR, _SECOND),
    _Row("referred_for_review", "rejected", "reject", P.VETTING_DECIDE, _DECIDE, _SECOND),
    _Row("referred_for_review", "in_progress", "resume_vetting", P.VETTING_DECIDE),
    _Row("cleared rejected", "in_progress", "reopen_vetting", P.VETTING_DECIDE),
]  # fmt: skip

# --- status determination -----------------------------------------------------------------

_ASSESS, _RSD_DECIDE = P.DETERMINATION_ASSESS, P.DETERMINATION_DECIDE
_AUTHOR = (FourEyes.ASSESSMENT_AUTHOR,)

_DETERMINATION = [
    _Row("registered reopened", "interview_scheduled", "schedule_interview", _ASSESS),
    _Row("interview_scheduled", "interviewed", "record_interview", _ASSESS),
    _Row("interviewed reopened", "assessment_drafted", "draft_assessment", _ASSESS),
    _Row("assessment_drafted", "supervisor_review", "submit_for_review", _ASSESS),
    _Row("supervisor_review", "assessment_drafted", "return_assessment", _RSD_DECIDE,
         four_eyes=_AUTHOR),
    _Row("supervisor_review", "decided", "decide", _RSD_DECIDE, four_eyes=_AUTHOR,
         choice=Choice.of("outcome", DeterminationOutcome)),
    _Row("decided", "notified", "notify", _ASSESS),
    _Row("notified", "appeal_lodged", "lodge_appeal", _ASSESS, ("first_instance_negative",)),
    _Row("appeal_lodged", "appeal_decided", "decide_appeal", _RSD_DECIDE,
         four_eyes=(FourEyes.ASSESSMENT_AUTHOR, FourEyes.FIRST_INSTANCE_DECIDER),
         choice=Choice.of("outcome", AppealOutcome)),
    _Row("registered interview_scheduled interviewed assessment_drafted notified appeal_decided"
         " reopened", "closed", "close", _RSD_DECIDE, choice=_CLOSE),
    _Row("closed", "reopened", "reopen", _RSD_DECIDE, choice=_REOPEN),
]  # fmt: skip

# --- resettlement -------------------------------------------------------------------------

# Checked on every way into a submission to a state, a resumed one included.
SUBMISSION_GUARDS = (
    "vetting_cleared",
    "submission_complete",
    "screening_cleared",
    "medical_examination_completed",
    "best_interests_assessed",
    "resettlement_consent",
)
_PREP, _REVIEW = P.RESETTLEMENT_PREPARE, P.RESETTLEMENT_REVIEW
_PREPARER = (FourEyes.RRF_PREPARER,)
_OUT = ReviewOutcome

_RESETTLEMENT = [
    _Row("not_considered", "identified", "identify", _PREP),
    _Row("identified deprioritised", "needs_assessment", "assess_needs", _PREP),
    _Row("needs_assessment", "deprioritised", "deprioritise", _PREP),
    _Row("needs_assessment", "interview", "schedule_interview", _PREP),
    _Row("interview", "rrf_preparation", "prepare_rrf", _PREP),
    _Row("rrf_preparation", "submission_review", "submit_for_review", _PREP, SUBMISSION_GUARDS),
    _Row("submission_review", "submitted", _OUT.RECOMMENDED, _REVIEW, SUBMISSION_GUARDS,
         _PREPARER),
    _Row("submission_review", "rrf_preparation", _OUT.RETURNED_TO_CASEWORKER, _REVIEW,
         four_eyes=_PREPARER),
    _Row("submission_review", "deprioritised", _OUT.NOT_RECOMMENDED, _REVIEW, four_eyes=_PREPARER),
    _Row("submitted", "state_decision", "record_state_decision", _PREP,
         choice=Choice.of("decision", StateDecision)),
    _Row("state_decision", "submitted", "resume_submission", _PREP,
         ("state_decision_pending", *SUBMISSION_GUARDS)),
    _Row("state_decision", "rrf_preparation", "prepare_resubmission", _PREP,
         ("state_decision_allows_resubmission",)),
    _Row("state_decision", "pending_departure_arrangements", "arrange_departure", _PREP,
         ("state_decision_allows_departure", "screening_cleared", "resettlement_consent")),
    _Row("pending_departure_arrangements", "departed", "record_departure", _PREP,
         ("screening_cleared", "fit_to_travel", "resettlement_consent")),
    _Row("departed", "arrived", "record_arrival", _PREP),
]  # fmt: skip

# --- hand-off -----------------------------------------------------------------------------

_TARGET = ("handoff_target_valid", "consent_for_partner")
_REQUESTER = (FourEyes.HANDOFF_REQUESTER,)
_RECEIVING = Scope.RECEIVING_OFFICE

_HANDOFF = [
    _Row("none accepted declined revoked sent", "requested", "request", P.HANDOFF_REQUEST,
         _TARGET),
    _Row("requested", "approved", "approve", P.HANDOFF_APPROVE, _TARGET, _REQUESTER),
    _Row("requested approved", "revoked", "revoke", P.HANDOFF_REQUEST),
    _Row("approved", "accepted", "accept", P.HANDOFF_ACCEPT, ("handoff_to_office",),
         scope=_RECEIVING),
    _Row("approved", "declined", "decline", P.HANDOFF_ACCEPT, ("handoff_to_office",),
         scope=_RECEIVING),
    _Row("approved", "sent", "send_to_partner", P.HANDOFF_APPROVE,
         ("handoff_to_partner", "consent_for_partner"), _REQUESTER),
]  # fmt: skip

TABLES: Mapping[Process, tuple[Transition, ...]] = MappingProxyType(
    {
        Process.CASE_STAGE: _build(Process.CASE_STAGE, _CASE_STAGE),
        Process.VETTING: _build(Process.VETTING, _VETTING),
        Process.DETERMINATION: _build(Process.DETERMINATION, _DETERMINATION),
        Process.RESETTLEMENT: _build(Process.RESETTLEMENT, _RESETTLEMENT),
        Process.HANDOFF: _build(Process.HANDOFF, _HANDOFF),
    }
)


_BY_SOURCE: Mapping[tuple[Process, str], tuple[Transition, ...]] = MappingProxyType(
    {
        (process, state): tuple(t for t in table if t.from_state == state)
        for process, table in TABLES.items()
        for state in {t.from_state for t in table}
    }
)
_BY_EDGE: Mapping[tuple[Process, str, str], Transition] = MappingProxyType(
    {(t.process, t.from_state, t.to_state): t for table in TABLES.values() for t in table}
)

if len(_BY_EDGE) != sum(len(table) for table in TABLES.values()):
    raise ValueError("a process has two transitions between the same states")


def transitions_from(process: Process, state: str) -> tuple[Transition, ...]:
    """The rows of ``process`` that leave ``state``, in table order."""
    return _BY_SOURCE.get((process, state), ())


def find_transition(process: Process, from_state: str, to_state: str) -> Transition | None:
    """The row ``from_state`` -> ``to_state`` of ``process`` (at most one), or None."""
    return _BY_EDGE.get((process, from_state, to_state))
