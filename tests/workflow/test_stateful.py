"""Random sequences of transitions by random staff on the pure engine.

The machine plays the service of phase 2: it records interviews, check
results, consent, submissions and hand-off proposals as facts, asks the engine
before every transition and applies what the engine allows. The invariants are
written from the issue's rules directly, not through the guard registry, so a
wrong guard or a missing one in a table is caught rather than mirrored.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from casework.authz.permissions import ROLE_PERMISSIONS, Permission, permissions_for
from casework.cases.codes import ResettlementStage, Stage
from casework.errors import ValidationFailed
from casework.workflow.codes import (
    CheckType,
    CredibilityAssessment,
    HandoffKind,
    IdentityVerification,
    MedicalExamination,
    Priority,
    SecurityScreening,
    SubmissionCategory,
)
from casework.workflow.consent import PARTNER_PURPOSES, ConsentPurpose, has_valid_consent
from casework.workflow.engine import (
    InvalidTransition,
    TransitionForbidden,
    allowed_for_case,
    allowed_transitions,
    check_transition,
    companion_of,
)
from casework.workflow.guards import GUARDS, Actor, CaseFacts, Handoff, Submission
from casework.workflow.machines import (
    ACTIVE_STAGES,
    STATES,
    TABLES,
    DeterminationOutcome,
    HandoffStatus,
    Process,
    Transition,
    VettingState,
)
from tests.workflow.helpers import NOW, consent

OFFICES = ("amm-01", "irb-02")
PARTNERS = ("PARTNER-A", "PARTNER-B")
DESTINATIONS = ("CAN", "SWE", "XXA")
VETTING_DECISIONS = {VettingState.CLEARED, VettingState.REJECTED, VettingState.REFERRED_FOR_REVIEW}
REVIEW_OUTCOMES = {"recommended", "returned_to_caseworker", "not_recommended"}

# A core team in each office so that deep paths (two supervisors for four-eyes) exist;
# random staff of any role and office join it.
CORE_TEAM = (
    ("supervisor", "amm-01"),
    ("supervisor", "amm-01"),
    ("vetting_officer", "amm-01"),
    ("caseworker", "amm-01"),
    ("supervisor", "irb-02"),
    ("supervisor", "irb-02"),
)
random_staff = st.lists(
    st.tuples(st.sampled_from(sorted(ROLE_PERMISSIONS)), st.sampled_from((*OFFICES, None))),
    max_size=5,
)


def _choices_for(row: Transition | None, data: st.DataObject, valid: bool) -> dict[str, str]:
    if row is None or row.choice is None:
        return {}
    if valid:
        return {row.choice.field: data.draw(st.sampled_from(row.choice.values))}
    return data.draw(
        st.sampled_from([{}, {row.choice.field: "no-such-value"}, {"unexpected": "x"}])
    )


class WorkflowMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.facts = CaseFacts(office="amm-01", now=NOW)
        self.staff: list[Actor] = []
        self.proposal = Handoff(HandoffKind.OFFICE, "irb-02", "nobody")

    @initialize(extra=random_staff)
    def hire(self, extra: list[tuple[str, str | None]]) -> None:
        for number, (role, office) in enumerate((*CORE_TEAM, *extra)):
            self.staff.append(Actor(f"user-{number}", permissions_for(role), office))

    # --- facts the service records outside the state machines -----------------------------

    @rule(data=st.data())
    def record_interview(self, data: st.DataObject) -> None:
        person = data.draw(st.sampled_from(self.staff))
        if (
            self.facts.vetting == VettingState.IN_PROGRESS
            and person.has(Permission.VETTING_CONDUCT)
            and person.office == self.facts.office
        ):
            interviewers = self.facts.vetting_interviewers | {person.user_id}
            self.facts = replace(self.facts, vetting_interviewers=interviewers)

    @rule(check=st.sampled_from(CheckType), data=st.data())
    def record_check(self, check: CheckType, data: st.DataObject) -> None:
        # Any time, even after vetting: a re-screening may flag a case late.
        statuses = {
            CheckType.IDENTITY_VERIFICATION: ("identity_verification", IdentityVerification),
            CheckType.SECURITY_SCREENING: ("security_screening", SecurityScreening),
            CheckType.MEDICAL_EXAMINATION: ("medical_examination", MedicalExamination),
            CheckType.CREDIBILITY_ASSESSMENT: ("credibility_assessment", CredibilityAssessment),
        }
        name, enum = statuses[check]
        changes: dict[str, Any] = {name: data.draw(st.sampled_from(list(enum)))}
        if check is CheckType.MEDICAL_EXAMINATION:
            changes["fit_to_travel"] = data.draw(st.sampled_from([True, True, False, None]))
        self.facts = replace(self.facts, **changes)

    @rule(alerts=st.integers(0, 2))
    def duplicate_alerts(self, alerts: int) -> None:
        self.facts = replace(self.facts, open_duplicate_alerts=alerts)

    @rule(
        purpose=st.sampled_from(ConsentPurpose),
        recipient=st.sampled_from((*PARTNERS, *DESTINATIONS)),
        given_days_ago=st.integers(-1, 30),
        lasts_days=st.none() | st.integers(1, 60),
    )
    def give_consent(
        self, purpose: ConsentPurpose, recipient: str, given_days_ago: int, lasts_days: int | None
    ) -> None:
        given = self.facts.now - timedelta(days=given_days_ago)
        expires = None if lasts_days is None else given + timedelta(days=lasts_days)
        record = consent(purpose, recipient, given_at=given, expires_at=expires)
        self.facts = replace(self.facts, consents=(*self.facts.consents, record))

    @rule(data=st.data())
    def withdraw_consent(self, data: st.DataObject) -> None:
        records = list(self.facts.consents)
        if not records:
            return
        index = data.draw(st.integers(0, len(records) - 1))
        records[index] = replace(records[index], withdrawn_at=self.facts.now)
        self.facts = replace(self.facts, consents=tuple(records))

    @rule(days=st.integers(1, 40))
    def time_passes(self, days: int) -> None:
        self.facts = replace(self.facts, now=self.facts.now + timedelta(days=days))

    @rule(
        destination=st.sampled_from(DESTINATIONS),
        priority=st.none() | st.sampled_from(Priority),
        categories=st.lists(st.sampled_from(SubmissionCategory), max_size=3),
    )
    def draft_submission(
        self, destination: str, priority: Priority | None, categories: list[SubmissionCategory]
    ) -> None:
        submission = Submission(destination, priority, tuple(categories))
        self.facts = replace(self.facts, submission=submission)

    @rule(child_at_risk=st.booleans(), assessed=st.booleans())
    def needs(self, child_at_risk: bool, assessed: bool) -> None:
        needs = frozenset({"SC-UC", "LP-RR"} if child_at_risk else {"LP-RR"})
        self.facts = replace(
            self.facts, specific_needs=needs, best_interests_assessment_done=assessed
        )

    @rule(kind=st.sampled_from(HandoffKind), receiver=st.sampled_from((*OFFICES, *PARTNERS)))
    def propose_handoff(self, kind: HandoffKind, receiver: str) -> None:
        self.proposal = Handoff(kind, receiver, "nobody")

    # --- transitions ----------------------------------------------------------------------

    def facts_for(self, process: Process, target: str, person: Actor) -> CaseFacts:
        """The facts a request is checked against: a new hand-off request carries its target."""
        if process is Process.HANDOFF and target == HandoffStatus.REQUESTED:
            proposed = replace(self.proposal, requested_by=person.user_id)
            return replace(self.facts, handoff=proposed)
        return self.facts

    def allowed_for(self, person: Actor) -> list[Transition]:
        """What ``person`` may do now; a hand-off request is checked with the proposed one."""
        rows = [t for t in allowed_for_case(self.facts, person) if not is_request(t)]
        state = self.facts.handoff_status
        proposed = self.facts_for(Process.HANDOFF, HandoffStatus.REQUESTED, person)
        return rows + [
            t
            for t in allowed_transitions(Process.HANDOFF, state, proposed, person)
            if is_request(t)
        ]

    @rule(data=st.data())
    def take_an_allowed_transition(self, data: st.DataObject) -> None:
        options = [(person, row) for person in self.staff for row in self.allowed_for(person)]
        if not options:
            return
        person, row = data.draw(st.sampled_from(options))
        checked = self.facts_for(row.process, row.to_state, person)
        choices = _choices_for(row, data, valid=True)
        taken = check_transition(
            row.process, row.from_state, row.to_state, checked, person, choices
        )
        assert taken == row
        self.apply(row, checked, person, choices)

    @rule(data=st.data(), steps=st.integers(1, 12))
    def advance(self, data: st.DataObject, steps: int) -> None:
        """A diligent caseworker: record what the next forward steps lack, then take them."""
        for _ in range(steps):
            handoffs_too = data.draw(st.integers(0, 3)) == 0
            forward = [
                row
                for process in Process
                for row in TABLES[process]
                if row.name in FORWARD
                and row.from_state == self.facts.state_of(process)
                and (handoffs_too or process is not Process.HANDOFF)
            ]
            if not forward:
                return
            row = data.draw(st.sampled_from(forward))
            self.facts = remedy(self.facts, row, self.staff)
            options = [
                person
                for person in self.staff
                if row
                in allowed_transitions(
                    row.process,
                    row.from_state,
                    self.facts_for(row.process, row.to_state, person),
                    person,
                )
            ]
            if not options:
                continue
            person = data.draw(st.sampled_from(options))
            checked = self.facts_for(row.process, row.to_state, person)
            choices = _choices_for(row, data, valid=True)
            if row.name in HOPEFUL and data.draw(st.booleans()):
                choices = HOPEFUL[row.name]
            check_transition(row.process, row.from_state, row.to_state, checked, person, choices)
            self.apply(row, checked, person, choices)

    @rule(data=st.data(), process=st.sampled_from(Process))
    def attempt_any_transition(self, data: st.DataObject, process: Process) -> None:
        person = data.draw(st.sampled_from(self.staff))
        target = data.draw(st.sampled_from([m.value for m in STATES[process]]))
        source = self.facts.state_of(process)
        checked = self.facts_for(process, target, person)
        row = next(
            (t for t in TABLES[process] if t.from_state == source and t.to_state == target), None
        )
        valid = data.draw(st.booleans())
        choices = _choices_for(row, data, valid)
        try:
            taken = check_transition(process, source, target, checked, person, choices)
        except InvalidTransition as refusal:
            self.check_refusal(refusal, row, checked, person)
            return
        except TransitionForbidden:
            assert row is not None
            rows = [row, *filter(None, [companion_of(row, checked)])]
            assert not all(person.has(r.permission) for r in rows)
            return
        except ValidationFailed:
            assert row is not None
            assert not valid
            return
        assert taken == row
        assert row in allowed_transitions(process, source, checked, person)
        self.apply(row, checked, person, choices)

    def check_refusal(
        self,
        refusal: InvalidTransition,
        row: Transition | None,
        checked: CaseFacts,
        person: Actor,
    ) -> None:
        source = checked.state_of(row.process) if row else None
        if row is None:
            assert refusal.unmet_guards == ()
        else:
            assert refusal.unmet_guards, "a refusal of an existing row names its guards"
            rows = [row, *filter(None, [companion_of(row, checked)])]
            for name in refusal.unmet_guards:
                assert any(
                    name in r.guards and not GUARDS[name].check(checked, person, r) for r in rows
                )
            assert source is not None
        for allowed in refusal.allowed:
            assert allowed.from_state == allowed_state(allowed, checked)

    def apply(
        self, row: Transition, checked: CaseFacts, person: Actor, choices: dict[str, str]
    ) -> None:
        """Check the issue's rules on the step, then move (with the companion, if any)."""
        companion = companion_of(row, checked)
        for moved in filter(None, [row, companion]):
            assert_rules_hold(moved, checked, person)
            event(f"{moved.process.value} -> {moved.to_state}")
        facts = checked
        for moved in filter(None, [row, companion]):
            facts = effects(moved, facts, person, choices)
        self.facts = facts

    # --- invariants -----------------------------------------------------------------------

    @invariant()
    def every_allowed_transition_is_accepted(self) -> None:
        for person in self.staff:
            for row in allowed_for_case(self.facts, person):
                choices = {row.choice.field: row.choice.values[0]} if row.choice is not None else {}
                check_transition(
                    row.process, row.from_state, row.to_state, self.facts, person, choices
                )

    @invariant()
    def states_are_known(self) -> None:
        for process in Process:
            assert self.facts.state_of(process) in {m.value for m in STATES[process]}


# The steps that move a case on towards resettlement or a hand-off.
FORWARD = frozenset(
    {
        "start_vetting",
        "open_vetting",
        "clear",
        "refer_to_determination",
        "schedule_interview",
        "record_interview",
        "draft_assessment",
        "submit_for_review",
        "decide",
        "notify",
        "refer_to_resettlement",
        "identify",
        "assess_needs",
        "prepare_rrf",
        "recommended",
        "record_state_decision",
        "arrange_departure",
        "record_departure",
        "record_arrival",
        "request",
        "approve",
        "accept",
        "send_to_partner",
    }
)


# The outcomes that keep a case moving towards departure, drawn half the time.
HOPEFUL = {"decide": {"outcome": "recognized"}, "record_state_decision": {"decision": "accepted"}}


def remedy(facts: CaseFacts, row: Transition, staff: list[Actor]) -> CaseFacts:
    """Record the facts a forward step lacks, as a diligent caseworker would."""
    changes: dict[str, Any] = {}
    if facts.vetting == VettingState.IN_PROGRESS and not facts.vetting_interviewers:
        interviewer = next(
            (p for p in staff if p.has(Permission.VETTING_CONDUCT) and p.office == facts.office),
            None,
        )
        if interviewer is not None:
            changes["vetting_interviewers"] = frozenset({interviewer.user_id})
    if row.name in {"clear", "recommended", "submit_for_review", "arrange_departure"}:
        changes.update(
            identity_verification=IdentityVerification.VERIFIED,
            security_screening=SecurityScreening.CLEARED,
            medical_examination=MedicalExamination.COMPLETED,
            fit_to_travel=True,
            open_duplicate_alerts=0,
        )
        if facts.credibility_assessment == CredibilityAssessment.PENDING:
            changes["credibility_assessment"] = CredibilityAssessment.CREDIBLE
    if row.process is Process.RESETTLEMENT:
        submission = facts.submission
        if submission is None or not submission.is_complete:
            submission = Submission("CAN", Priority.URGENT, (SubmissionCategory.MEDICAL_NEEDS,))
            changes["submission"] = submission
        destination = submission.destination_country
        assert destination is not None
        if not has_valid_consent(
            facts.consents, ConsentPurpose.RESETTLEMENT_SUBMISSION, destination, facts.now
        ):
            record = consent(ConsentPurpose.RESETTLEMENT_SUBMISSION, destination)
            record = replace(record, given_at=facts.now, expires_at=None)
            changes["consents"] = (*facts.consents, record)
        changes["best_interests_assessment_done"] = True
    if row.process is Process.HANDOFF and facts.handoff and facts.handoff.kind == "partner":
        partner = facts.handoff.target
        record = replace(consent(ConsentPurpose.REFERRAL, partner), given_at=facts.now)
        changes["consents"] = (*changes.get("consents", facts.consents), record)
    return replace(facts, **changes)


def is_request(row: Transition) -> bool:
    return row.process is Process.HANDOFF and row.to_state == HandoffStatus.REQUESTED


def allowed_state(row: Transition, facts: CaseFacts) -> str:
    return facts.state_of(row.process)


def assert_rules_hold(row: Transition, facts: CaseFacts, person: Actor) -> None:
    """The issue's rules, restated independently of the guards."""
    who = person.user_id
    assert person.has(row.permission), "no transition without its permission"
    if row.name in {"accept", "decline"}:
        assert facts.handoff is not None
        assert person.office == facts.handoff.target
    else:
        assert person.office is not None
        assert person.office == facts.office
    if row.process is Process.VETTING and row.to_state in VETTING_DECISIONS:
        assert facts.vetting_interviewers
        assert who not in facts.vetting_interviewers
        if row.from_state == VettingState.REFERRED_FOR_REVIEW:
            assert who != facts.vetting_referred_by
        assert facts.checks_complete
    if row.process is Process.DETERMINATION and row.name in {"decide", "return_assessment"}:
        assert who not in facts.assessment_authors
    if row.name == "decide_appeal":
        assert who not in facts.assessment_authors
        assert who != facts.first_instance_decided_by
    if row.process is Process.RESETTLEMENT and row.name in REVIEW_OUTCOMES:
        assert who not in facts.rrf_preparers
    if row.process is Process.HANDOFF and row.name in {"approve", "send_to_partner"}:
        assert facts.handoff is not None
        assert who != facts.handoff.requested_by
    if row.process is Process.CASE_STAGE and row.to_state == Stage.RESETTLEMENT:
        assert facts.vetting == VettingState.CLEARED
        assert facts.security_screening != SecurityScreening.FLAGGED
        assert facts.status_recognized
    if row.process is Process.RESETTLEMENT and row.to_state == ResettlementStage.SUBMITTED:
        assert facts.security_screening == SecurityScreening.CLEARED
        assert facts.medical_examination == MedicalExamination.COMPLETED
        assert facts.vetting == VettingState.CLEARED
        assert facts.submission is not None
        assert facts.submission.is_complete
        destination = facts.submission.destination_country
        assert destination is not None
        assert has_valid_consent(
            facts.consents, ConsentPurpose.RESETTLEMENT_SUBMISSION, destination, facts.now
        )
        assert "SC-UC" not in facts.specific_needs or facts.best_interests_assessment_done
    if row.to_state == HandoffStatus.SENT or row.to_state == Stage.HANDED_OFF:
        handoff = facts.handoff
        assert handoff is not None
        assert handoff.kind is HandoffKind.PARTNER
        assert any(
            has_valid_consent(facts.consents, p, handoff.target, facts.now)
            for p in PARTNER_PURPOSES
        )


def effects(row: Transition, facts: CaseFacts, person: Actor, choices: dict[str, str]) -> CaseFacts:
    """What the phase-2 service records with each transition."""
    who, changes = person.user_id, dict[str, Any]()
    process, target = row.process, row.to_state
    if process is Process.CASE_STAGE:
        changes["stage"] = target
        if target in {Stage.CLOSED, Stage.HANDED_OFF} and facts.stage in ACTIVE_STAGES:
            changes["last_active_stage"] = facts.stage
    elif process is Process.VETTING:
        changes["vetting"] = target
        if target == VettingState.REFERRED_FOR_REVIEW:
            changes["vetting_referred_by"] = who
    elif process is Process.DETERMINATION:
        changes["determination"] = target
        if row.name == "draft_assessment":
            changes["assessment_authors"] = facts.assessment_authors | {who}
        if row.name == "decide":
            changes["first_instance_outcome"] = DeterminationOutcome(choices["outcome"])
            changes["first_instance_decided_by"] = who
            changes["appeal_outcome"] = None
        if row.name == "decide_appeal":
            changes["appeal_outcome"] = choices["outcome"]
    elif process is Process.RESETTLEMENT:
        changes["resettlement"] = target
        if row.name in {"prepare_rrf", "prepare_resubmission", "submit_for_review"}:
            changes["rrf_preparers"] = facts.rrf_preparers | {who}
        if row.name == "record_state_decision":
            changes["state_decision"] = choices["decision"]
    else:
        changes["handoff_status"] = target
        handoff = facts.handoff
        assert handoff is not None
        if row.name == "approve":
            changes["handoff"] = replace(handoff, approved_by=who)
        if row.name == "accept":
            changes["office"] = handoff.target
    return replace(facts, **changes)


WorkflowMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=60, deadline=None)
TestWorkflowMachine = WorkflowMachine.TestCase
