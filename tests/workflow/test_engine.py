"""The engine: refusals and their problem documents, four-eyes, and whole journeys."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from casework.authz.permissions import Permission
from casework.cases.codes import ResettlementStage, Stage
from casework.errors import PROBLEM_MIME, ValidationFailed
from casework.workflow.codes import HandoffKind, MedicalExamination, SecurityScreening
from casework.workflow.consent import ConsentPurpose
from casework.workflow.engine import (
    InvalidTransition,
    TransitionForbidden,
    allowed_for_case,
    allowed_transitions,
    check_transition,
    companion_of,
    transition_ref,
)
from casework.workflow.guards import Actor, CaseFacts, Handoff
from casework.workflow.machines import (
    DeterminationOutcome,
    DeterminationStage,
    HandoffStatus,
    Process,
    StateDecision,
    Transition,
    VettingState,
)
from casework.workflow.schemas import InvalidTransitionProblem
from tests.workflow.helpers import (
    NOW,
    OFFICE,
    OTHER_OFFICE,
    PARTNER,
    actor,
    actor_with,
    consent,
    facts,
    ready_to_submit,
    recognised,
    vetted,
    with_handoff,
)

CASEWORKER = actor("caseworker", user="u-caseworker")
OFFICER = actor("vetting_officer", user="u-interviewer")
SUPERVISOR = actor("supervisor", user="u-supervisor")
SECOND = actor("supervisor", user="u-second")
RECEIVER = actor("supervisor", user="u-receiver", office=OTHER_OFFICE)


def _move(
    case: CaseFacts,
    process: Process,
    to: str,
    who: Actor,
    choices: dict[str, str] | None = None,
    **changes: Any,
) -> CaseFacts:
    """Check a transition, then apply it as the service would (state plus ``changes``)."""
    row = check_transition(process, case.state_of(process), to, case, who, choices)
    field = {
        Process.CASE_STAGE: "stage",
        Process.VETTING: "vetting",
        Process.DETERMINATION: "determination",
        Process.RESETTLEMENT: "resettlement",
        Process.HANDOFF: "handoff_status",
    }[row.process]
    return replace(case, **{field: to, **changes})


def _refusal(
    case: CaseFacts, process: Process, to: str, who: Actor, **kw: Any
) -> InvalidTransition:
    with pytest.raises(InvalidTransition) as caught:
        check_transition(process, case.state_of(process), to, case, who, **kw)
    return caught.value


# --- refusals -----------------------------------------------------------------------------


def test_a_transition_not_in_the_table_is_refused_with_the_allowed_ones() -> None:
    refusal = _refusal(facts(), Process.CASE_STAGE, "resettlement", SUPERVISOR)
    assert refusal.status == 409
    assert refusal.slug == "invalid-transition"
    assert refusal.detail == (
        "The case_stage process has no transition from intake to resettlement."
    )
    assert refusal.unmet_guards == ()
    assert [t.name for t in refusal.allowed] == ["start_vetting", "close"]
    assert refusal.extra["allowed_transitions"][0] == {
        "process": "case_stage",
        "name": "start_vetting",
        "from": "intake",
        "to": "vetting",
        "choice": None,
    }


def test_an_unknown_target_state_is_refused_without_repeating_it() -> None:
    refusal = _refusal(facts(), Process.CASE_STAGE, "Amina's file", SUPERVISOR)
    assert refusal.unmet_guards == ()
    assert refusal.detail == "The case_stage process has no such state."


def test_a_role_without_the_permission_is_forbidden_before_any_guard() -> None:
    case = facts(stage=Stage.VETTING, vetting=VettingState.IN_PROGRESS)  # guards fail too
    with pytest.raises(TransitionForbidden) as caught:
        check_transition(Process.VETTING, "in_progress", "cleared", case, OFFICER)
    assert caught.value.status == 403
    assert caught.value.detail == "Your role does not permit this transition."
    assert caught.value.extra == {}


def test_unmet_guards_are_named_and_explained() -> None:
    case = facts(stage=Stage.VETTING, vetting=VettingState.IN_PROGRESS)
    refusal = _refusal(case, Process.VETTING, "cleared", SUPERVISOR)
    assert refusal.unmet_guards == (
        "vetting_interview_recorded",
        "vetting_checks_complete",
        "identity_verified",
        "screening_cleared",
    )
    assert refusal.detail == (
        "The transition clear is not allowed now: No vetting interview is recorded for the "
        "case. Every vetting check (identity, security screening, medical examination, "
        "credibility) must be complete. The identity is not verified. Security screening "
        "has not cleared the case."
    )
    assert refusal.extra["unmet_guards"] == list(refusal.unmet_guards)
    assert refusal.allowed == ()  # no vetting decision is possible before the checks


def test_another_offices_staff_cannot_move_a_case() -> None:
    outsider = actor("supervisor", user="u-out", office=OTHER_OFFICE)
    refusal = _refusal(facts(), Process.CASE_STAGE, "vetting", outsider)
    assert refusal.unmet_guards == ("actor_in_owning_office",)
    assert refusal.allowed == ()


def test_facts_in_another_state_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="not in state 'vetting'"):
        check_transition(Process.CASE_STAGE, "vetting", "determination", facts(), SUPERVISOR)
    with pytest.raises(ValueError, match="not in state"):
        allowed_transitions(Process.VETTING, "cleared", facts(), SUPERVISOR)


@pytest.mark.parametrize(
    ("choices", "errors"),
    [
        (None, {"reason": ["Required by this transition."]}),
        ({"reason": "bored"}, {"reason": ["Must be one of: "]}),
        (
            {"reason": "deceased", "outcome": "recognized"},
            {"outcome": ["Not used by this transition."]},
        ),
    ],
)
def test_a_closure_needs_a_known_reason(
    choices: dict[str, str] | None, errors: dict[str, list[str]]
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_transition(Process.CASE_STAGE, "intake", "closed", facts(), SUPERVISOR, choices)
    found = caught.value.extra["errors"]["json"]
    assert set(found) == set(errors)
    for name, messages in errors.items():
        assert found[name][0].startswith(messages[0])
    assert "bored" not in str(caught.value.extra)


def test_a_transition_without_a_choice_refuses_one() -> None:
    with pytest.raises(ValidationFailed):
        check_transition(
            Process.CASE_STAGE, "intake", "vetting", facts(), SUPERVISOR, {"reason": "other"}
        )


def test_choices_are_checked_after_the_permission() -> None:
    with pytest.raises(TransitionForbidden):
        check_transition(Process.CASE_STAGE, "intake", "closed", facts(), CASEWORKER)


# --- four-eyes ----------------------------------------------------------------------------


def _in_vetting(**changes: Any) -> CaseFacts:
    return vetted(vetting=VettingState.IN_PROGRESS, **changes)


def test_a_supervisor_who_interviewed_cannot_decide_the_vetting() -> None:
    interviewer = actor("supervisor", user="u-interviewer")
    for decision in ("cleared", "rejected", "referred_for_review"):
        refusal = _refusal(_in_vetting(), Process.VETTING, decision, interviewer)
        assert refusal.unmet_guards == ("not_vetting_interviewer",)
        check_transition(Process.VETTING, "in_progress", decision, _in_vetting(), SUPERVISOR)


def test_any_interview_of_the_case_counts_for_four_eyes() -> None:
    case = _in_vetting(vetting_interviewers=frozenset({"u-a", "u-supervisor"}))
    assert _refusal(case, Process.VETTING, "cleared", SUPERVISOR).unmet_guards == (
        "not_vetting_interviewer",
    )


def test_a_referred_vetting_is_decided_by_someone_else() -> None:
    case = vetted(vetting=VettingState.REFERRED_FOR_REVIEW, vetting_referred_by="u-supervisor")
    assert _refusal(case, Process.VETTING, "cleared", SUPERVISOR).unmet_guards == (
        "not_vetting_referrer",
    )
    check_transition(Process.VETTING, "referred_for_review", "cleared", case, SECOND)


def test_vetting_cannot_be_decided_before_every_check_and_alert_review() -> None:
    case = _in_vetting(medical_examination=MedicalExamination.PENDING, open_duplicate_alerts=2)
    refusal = _refusal(case, Process.VETTING, "rejected", SUPERVISOR)
    assert refusal.unmet_guards == ("vetting_checks_complete", "duplicate_alerts_reviewed")


def test_a_flagged_screening_can_be_referred_or_rejected_but_not_cleared() -> None:
    case = _in_vetting(security_screening=SecurityScreening.FLAGGED)
    assert _refusal(case, Process.VETTING, "cleared", SUPERVISOR).unmet_guards == (
        "screening_cleared",
    )
    names = {t.name for t in allowed_transitions(Process.VETTING, "in_progress", case, SUPERVISOR)}
    assert names == {"refer_for_review", "reject"}


def test_the_assessment_author_cannot_decide_status() -> None:
    case = recognised(
        determination=DeterminationStage.SUPERVISOR_REVIEW,
        assessment_authors=frozenset({"u-supervisor"}),
    )
    refusal = _refusal(
        case, Process.DETERMINATION, "decided", SUPERVISOR, choices={"outcome": "recognized"}
    )
    assert refusal.unmet_guards == ("not_assessment_author",)
    check_transition(
        Process.DETERMINATION, "supervisor_review", "decided", case, SECOND, {"outcome": "rejected"}
    )


def test_an_appeal_is_decided_by_neither_the_author_nor_the_first_decider() -> None:
    case = recognised(
        determination=DeterminationStage.APPEAL_LODGED,
        first_instance_outcome=DeterminationOutcome.REJECTED,
        assessment_authors=frozenset({"u-second"}),
        first_instance_decided_by="u-supervisor",
    )
    choices = {"outcome": "overturned"}
    assert _refusal(
        case, Process.DETERMINATION, "appeal_decided", SUPERVISOR, choices=choices
    ).unmet_guards == ("not_first_instance_decider",)
    assert _refusal(
        case, Process.DETERMINATION, "appeal_decided", SECOND, choices=choices
    ).unmet_guards == ("not_assessment_author",)
    third = actor("supervisor", user="u-third")
    check_transition(Process.DETERMINATION, "appeal_lodged", "appeal_decided", case, third, choices)


def test_only_a_negative_decision_can_be_appealed() -> None:
    case = recognised()
    assert _refusal(case, Process.DETERMINATION, "appeal_lodged", CASEWORKER).unmet_guards == (
        "first_instance_negative",
    )


def test_the_preparer_cannot_review_the_submission() -> None:
    case = ready_to_submit(
        resettlement=ResettlementStage.SUBMISSION_REVIEW,
        rrf_preparers=frozenset({"u-supervisor"}),
    )
    for outcome in ("submitted", "rrf_preparation", "deprioritised"):
        refusal = _refusal(case, Process.RESETTLEMENT, outcome, SUPERVISOR)
        assert "not_rrf_preparer" in refusal.unmet_guards
        check_transition(Process.RESETTLEMENT, "submission_review", outcome, case, SECOND)


def test_the_hand_off_requester_cannot_approve_it() -> None:
    case = with_handoff(requested_by="u-supervisor")
    assert _refusal(case, Process.HANDOFF, "approved", SUPERVISOR).unmet_guards == (
        "not_handoff_requester",
    )
    check_transition(Process.HANDOFF, "requested", "approved", case, SECOND)


# --- resettlement guards ------------------------------------------------------------------


def test_rejected_vetting_or_flagged_screening_never_reaches_resettlement() -> None:
    assert _refusal(
        recognised(vetting=VettingState.REJECTED), Process.CASE_STAGE, "resettlement", CASEWORKER
    ).unmet_guards == ("vetting_cleared",)
    flagged = recognised(security_screening=SecurityScreening.FLAGGED)
    assert _refusal(flagged, Process.CASE_STAGE, "resettlement", CASEWORKER).unmet_guards == (
        "screening_not_flagged",
    )
    check_transition(Process.CASE_STAGE, "determination", "resettlement", recognised(), CASEWORKER)


def test_a_case_without_recognised_status_is_not_referred_to_resettlement() -> None:
    case = recognised(first_instance_outcome=DeterminationOutcome.REJECTED)
    assert _refusal(case, Process.CASE_STAGE, "resettlement", CASEWORKER).unmet_guards == (
        "refugee_status_recognized",
    )


@pytest.mark.parametrize(
    ("changes", "unmet"),
    [
        ({"security_screening": SecurityScreening.PENDING}, "screening_cleared"),
        ({"security_screening": SecurityScreening.FLAGGED}, "screening_cleared"),
        ({"medical_examination": MedicalExamination.PENDING}, "medical_examination_completed"),
        ({"specific_needs": frozenset({"SC-UC"})}, "best_interests_assessed"),
        ({"consents": (consent(withdrawn_at=NOW),)}, "resettlement_consent"),
        ({"consents": (consent(expires_at=NOW),)}, "resettlement_consent"),
        ({"consents": (consent(ConsentPurpose.DATA_SHARING),)}, "resettlement_consent"),
        ({"submission": None}, "submission_complete"),
    ],
)
def test_no_submission_without_screening_medical_child_assessment_and_consent(
    changes: dict[str, Any], unmet: str
) -> None:
    case = ready_to_submit(**changes)
    refusal = _refusal(case, Process.RESETTLEMENT, "submission_review", CASEWORKER)
    assert unmet in refusal.unmet_guards
    review = replace(case, resettlement=ResettlementStage.SUBMISSION_REVIEW)
    assert unmet in _refusal(review, Process.RESETTLEMENT, "submitted", SECOND).unmet_guards


def test_a_child_at_risk_is_submitted_once_assessed() -> None:
    case = ready_to_submit(specific_needs=frozenset({"SC-UC"}), best_interests_assessment_done=True)
    check_transition(Process.RESETTLEMENT, "rrf_preparation", "submission_review", case, CASEWORKER)


def test_consent_withdrawn_after_acceptance_stops_departure() -> None:
    accepted = ready_to_submit(
        resettlement=ResettlementStage.STATE_DECISION, state_decision=StateDecision.ACCEPTED
    )
    row = check_transition(
        Process.RESETTLEMENT,
        "state_decision",
        "pending_departure_arrangements",
        accepted,
        CASEWORKER,
    )
    assert row.name == "arrange_departure"
    withdrawn = replace(accepted, consents=(consent(withdrawn_at=NOW),))
    assert _refusal(
        withdrawn, Process.RESETTLEMENT, "pending_departure_arrangements", CASEWORKER
    ).unmet_guards == ("resettlement_consent",)


@pytest.mark.parametrize(
    ("decision", "allowed"),
    [
        (StateDecision.ACCEPTED, {"arrange_departure"}),
        (StateDecision.SPLIT_DECISION, {"arrange_departure", "prepare_resubmission"}),
        (StateDecision.DENIED, {"prepare_resubmission"}),
        (StateDecision.WITHDRAWN, {"prepare_resubmission"}),
        (StateDecision.DEFERRED, {"resume_submission"}),
        (StateDecision.SUSPENDED, {"resume_submission"}),
    ],
)
def test_what_follows_a_state_decision(decision: StateDecision, allowed: set[str]) -> None:
    case = ready_to_submit(resettlement=ResettlementStage.STATE_DECISION, state_decision=decision)
    rows = allowed_transitions(Process.RESETTLEMENT, "state_decision", case, CASEWORKER)
    assert {t.name for t in rows} == allowed


def test_a_resumed_submission_checks_screening_again() -> None:
    case = ready_to_submit(
        resettlement=ResettlementStage.STATE_DECISION,
        state_decision=StateDecision.DEFERRED,
        security_screening=SecurityScreening.FLAGGED,
    )
    assert (
        "screening_cleared"
        in _refusal(case, Process.RESETTLEMENT, "submitted", CASEWORKER).unmet_guards
    )


def test_departure_needs_fitness_to_travel() -> None:
    case = ready_to_submit(
        resettlement=ResettlementStage.PENDING_DEPARTURE_ARRANGEMENTS, fit_to_travel=False
    )
    assert _refusal(case, Process.RESETTLEMENT, "departed", CASEWORKER).unmet_guards == (
        "fit_to_travel",
    )


# --- hand-off -----------------------------------------------------------------------------


def test_an_office_hand_off_is_requested_approved_and_accepted_by_the_receiver() -> None:
    requested = _move(
        facts(
            stage=Stage.DETERMINATION,
            handoff=Handoff(HandoffKind.OFFICE, OTHER_OFFICE, "u-caseworker"),
        ),
        Process.HANDOFF,
        "requested",
        CASEWORKER,
    )
    approved = _move(requested, Process.HANDOFF, "approved", SUPERVISOR)
    assert _refusal(approved, Process.HANDOFF, "accepted", SECOND).unmet_guards == (
        "actor_in_receiving_office",
    )
    names = {t.name for t in allowed_for_case(approved, RECEIVER)}
    assert names == {"accept", "decline"}
    accepted = _move(approved, Process.HANDOFF, "accepted", RECEIVER, office=OTHER_OFFICE)
    assert allowed_for_case(accepted, SUPERVISOR) == []
    assert _refusal(accepted, Process.HANDOFF, "revoked", SUPERVISOR).unmet_guards == ()


def test_a_hand_off_is_revocable_until_accepted() -> None:
    for status in (HandoffStatus.REQUESTED, HandoffStatus.APPROVED):
        check_transition(
            Process.HANDOFF, status, "revoked", with_handoff(status=status), CASEWORKER
        )


def test_a_case_is_not_handed_to_its_own_office() -> None:
    case = with_handoff(target=OFFICE, status=HandoffStatus.NONE)
    assert _refusal(case, Process.HANDOFF, "requested", CASEWORKER).unmet_guards == (
        "handoff_target_valid",
    )


def test_a_closed_case_is_not_handed_off() -> None:
    case = with_handoff(status=HandoffStatus.NONE, stage=Stage.CLOSED)
    assert _refusal(case, Process.HANDOFF, "requested", CASEWORKER).unmet_guards == ("case_active",)


def _partner_case(**changes: Any) -> CaseFacts:
    base = with_handoff(
        HandoffKind.PARTNER,
        PARTNER,
        HandoffStatus.APPROVED,
        consents=(consent(ConsentPurpose.REFERRAL, PARTNER),),
    )
    return replace(base, **changes)


def test_a_partner_hand_off_moves_the_case_to_handed_off_with_it() -> None:
    case = _partner_case()
    sent = check_transition(Process.HANDOFF, "approved", "sent", case, SUPERVISOR)
    stage_row = companion_of(sent, case)
    assert stage_row is not None
    assert (stage_row.process, stage_row.from_state, stage_row.to_state) == (
        Process.CASE_STAGE,
        "determination",
        "handed_off",
    )
    assert companion_of(stage_row, case) == sent
    check_transition(Process.CASE_STAGE, "determination", "handed_off", case, SUPERVISOR)
    names = {t.name for t in allowed_for_case(case, SUPERVISOR)}
    assert {"send_to_partner", "hand_off_to_partner"} <= names


def test_partner_consent_is_needed_at_every_step() -> None:
    without = _partner_case(consents=())
    steps = [
        (HandoffStatus.NONE, "requested"),
        (HandoffStatus.REQUESTED, "approved"),
        (HandoffStatus.APPROVED, "sent"),
    ]
    for status, target in steps:
        case = replace(without, handoff_status=status)
        assert (
            "consent_for_partner"
            in _refusal(case, Process.HANDOFF, target, SUPERVISOR).unmet_guards
        )
    withdrawn = _partner_case(
        consents=(consent(ConsentPurpose.DATA_SHARING, PARTNER, withdrawn_at=NOW),)
    )
    refusal = _refusal(withdrawn, Process.CASE_STAGE, "handed_off", SUPERVISOR)
    assert refusal.unmet_guards == ("consent_for_partner",)


def test_a_partner_hand_off_is_not_sent_by_its_requester() -> None:
    case = _partner_case(handoff=Handoff(HandoffKind.PARTNER, PARTNER, "u-supervisor"))
    assert _refusal(case, Process.CASE_STAGE, "handed_off", SUPERVISOR).unmet_guards == (
        "not_handoff_requester",
    )


def test_an_office_hand_off_cannot_be_sent_to_a_partner() -> None:
    case = with_handoff(status=HandoffStatus.APPROVED)
    refusal = _refusal(case, Process.HANDOFF, "sent", SUPERVISOR)
    assert refusal.unmet_guards == ("handoff_to_partner", "partner_handoff_approved")
    refusal = _refusal(case, Process.CASE_STAGE, "handed_off", SUPERVISOR)
    assert "partner_handoff_approved" in refusal.unmet_guards


def test_the_stage_cannot_move_to_handed_off_once_the_package_is_sent() -> None:
    case = _partner_case(handoff_status=HandoffStatus.SENT)
    refusal = _refusal(case, Process.CASE_STAGE, "handed_off", SUPERVISOR)
    assert refusal.unmet_guards == ("partner_handoff_approved", "companion_can_move")


# --- closure and reopening ----------------------------------------------------------------


def test_closing_and_reopening_need_cases_close_and_a_reason() -> None:
    with pytest.raises(TransitionForbidden):
        check_transition(
            Process.CASE_STAGE, "intake", "closed", facts(), CASEWORKER, {"reason": "duplicate"}
        )
    closed = _move(facts(), Process.CASE_STAGE, "closed", SUPERVISOR, {"reason": "duplicate"})
    closed = replace(closed, last_active_stage=Stage.INTAKE)
    rows = allowed_transitions(Process.CASE_STAGE, "closed", closed, SUPERVISOR)
    assert [(t.name, t.to_state) for t in rows] == [("reopen", "intake")]
    check_transition(
        Process.CASE_STAGE, "closed", "intake", closed, SUPERVISOR, {"reason": "new_information"}
    )


def test_a_reopened_case_cannot_skip_its_guards() -> None:
    closed = recognised(
        stage=Stage.CLOSED,
        last_active_stage=Stage.RESETTLEMENT,
        security_screening=SecurityScreening.FLAGGED,
    )
    refusal = _refusal(
        closed, Process.CASE_STAGE, "resettlement", SUPERVISOR, choices={"reason": "other"}
    )
    assert refusal.unmet_guards == ("screening_not_flagged",)
    assert [t.to_state for t in refusal.allowed] == ["intake", "vetting", "determination"]


# --- a whole journey ----------------------------------------------------------------------


def test_a_case_travels_from_intake_to_arrival() -> None:
    preparer = actor("caseworker", user="u-preparer")
    assessor = actor("caseworker", user="u-assessor")
    case = facts()
    case = _move(case, Process.CASE_STAGE, "vetting", CASEWORKER)
    case = _move(case, Process.VETTING, "in_progress", OFFICER)
    case = replace(
        vetted(vetting=VettingState.IN_PROGRESS), vetting_interviewers=frozenset({OFFICER.user_id})
    )
    case = _move(case, Process.VETTING, "cleared", SUPERVISOR)
    case = _move(case, Process.CASE_STAGE, "determination", CASEWORKER)
    for target in ("interview_scheduled", "interviewed"):
        case = _move(case, Process.DETERMINATION, target, assessor)
    case = _move(
        case,
        Process.DETERMINATION,
        "assessment_drafted",
        assessor,
        assessment_authors=frozenset({assessor.user_id}),
    )
    case = _move(case, Process.DETERMINATION, "supervisor_review", assessor)
    case = _move(
        case,
        Process.DETERMINATION,
        "decided",
        SUPERVISOR,
        {"outcome": "recognized"},
        first_instance_outcome=DeterminationOutcome.RECOGNIZED,
        first_instance_decided_by=SUPERVISOR.user_id,
    )
    case = _move(case, Process.DETERMINATION, "notified", assessor)
    case = _move(case, Process.CASE_STAGE, "resettlement", preparer)
    for target in ("identified", "needs_assessment", "interview", "rrf_preparation"):
        case = _move(case, Process.RESETTLEMENT, target, preparer)
    case = replace(
        case,
        submission=ready_to_submit().submission,
        consents=(consent(),),
        rrf_preparers=frozenset({preparer.user_id}),
    )
    case = _move(case, Process.RESETTLEMENT, "submission_review", preparer)
    case = _move(case, Process.RESETTLEMENT, "submitted", SUPERVISOR)
    case = _move(
        case,
        Process.RESETTLEMENT,
        "state_decision",
        preparer,
        {"decision": "accepted"},
        state_decision=StateDecision.ACCEPTED,
    )
    for target in ("pending_departure_arrangements", "departed", "arrived"):
        case = _move(case, Process.RESETTLEMENT, target, preparer)
    assert allowed_transitions(Process.RESETTLEMENT, "arrived", case, SUPERVISOR) == []
    case = _move(case, Process.CASE_STAGE, "closed", SUPERVISOR, {"reason": "resettled"})
    assert case.stage is Stage.CLOSED


def test_allowed_for_case_covers_every_process_for_the_caller() -> None:
    case = vetted(stage=Stage.VETTING, vetting=VettingState.IN_PROGRESS)
    by_supervisor = {(t.process, t.name) for t in allowed_for_case(case, SUPERVISOR)}
    assert by_supervisor == {
        (Process.VETTING, "clear"),
        (Process.VETTING, "refer_for_review"),
        (Process.VETTING, "reject"),
        (Process.CASE_STAGE, "close"),
    }  # a hand-off request is checked with its target, which these facts lack
    by_caseworker = {(t.process, t.name) for t in allowed_for_case(case, CASEWORKER)}
    assert (Process.VETTING, "clear") not in by_caseworker
    nobody = actor_with(Permission.WORKFLOW_READ)
    assert allowed_for_case(case, nobody) == []


def test_transition_refs_hold_no_guard_or_permission() -> None:
    row: Transition = allowed_for_case(facts(), SUPERVISOR)[-1]
    assert set(transition_ref(row)) == {"process", "name", "from", "to", "choice"}


# --- the problem document -----------------------------------------------------------------


def _rendered(app: Flask, error: Exception) -> Any:
    """The response the service's own error handlers give for ``error``."""
    with app.test_request_context("/api/v1/cases/0123456789P/transitions", method="POST"):
        return app.make_response(app.handle_user_exception(error))


def _raised(*args: Any) -> Exception:
    try:
        check_transition(*args)
    except Exception as error:  # the exception is the subject here
        return error
    raise AssertionError("the transition was allowed")


def test_a_refusal_is_a_409_invalid_transition_problem(app: Flask) -> None:
    case = facts(stage=Stage.VETTING, vetting=VettingState.IN_PROGRESS)
    refusal = _raised(Process.VETTING, "in_progress", "cleared", case, SUPERVISOR)
    response = _rendered(app, refusal)
    assert response.status_code == 409
    assert response.mimetype == PROBLEM_MIME
    body = response.get_json()
    assert body["type"] == "urn:casework:problem:invalid-transition"
    assert body["title"] == "Transition not allowed"
    assert body["unmet_guards"][0] == "vetting_interview_recorded"
    assert body["allowed_transitions"] == []
    assert InvalidTransitionProblem().validate(body) == {}


def test_a_refusal_lists_what_the_caller_may_do_instead(app: Flask) -> None:
    refusal = _raised(Process.CASE_STAGE, "intake", "determination", facts(), SUPERVISOR)
    body = _rendered(app, refusal).get_json()
    assert [t["to"] for t in body["allowed_transitions"]] == ["vetting", "closed"]
    assert body["allowed_transitions"][1]["choice"]["field"] == "reason"


def test_a_missing_permission_is_a_403_problem(app: Flask) -> None:
    forbidden = _raised(Process.CASE_STAGE, "intake", "closed", facts(), CASEWORKER)
    response = _rendered(app, forbidden)
    assert response.status_code == 403
    assert response.get_json()["type"] == "urn:casework:problem:forbidden"


def test_a_missing_reason_is_a_422_problem(app: Flask) -> None:
    invalid = _raised(Process.CASE_STAGE, "intake", "closed", facts(), SUPERVISOR)
    body = _rendered(app, invalid).get_json()
    assert body["status"] == 422
    assert body["errors"] == {"json": {"reason": ["Required by this transition."]}}


def test_time_moves_consent_out_of_validity() -> None:
    case = ready_to_submit(consents=(consent(expires_at=NOW + timedelta(days=1)),))
    check_transition(Process.RESETTLEMENT, "rrf_preparation", "submission_review", case, CASEWORKER)
    later = replace(case, now=NOW + timedelta(days=1))
    assert _refusal(later, Process.RESETTLEMENT, "submission_review", CASEWORKER).unmet_guards == (
        "resettlement_consent",
    )
