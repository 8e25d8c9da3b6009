"""Every guard, holding and failing, and the facts it reads."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from casework.authz.access import Principal
from casework.authz.permissions import permissions_for
from casework.cases.codes import ResettlementStage, Stage
from casework.workflow.codes import (
    CheckType,
    HandoffKind,
    IdentityVerification,
    MedicalExamination,
    Priority,
    SecurityScreening,
    SubmissionCategory,
)
from casework.workflow.consent import ConsentPurpose
from casework.workflow.guards import (
    GUARDS,
    Actor,
    CaseFacts,
    Handoff,
    Submission,
    is_destination_country,
    unmet,
)
from casework.workflow.machines import (
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
from tests.workflow.helpers import (
    NOW,
    OFFICE,
    OTHER_OFFICE,
    PARTNER,
    actor,
    complete_submission,
    consent,
    facts,
    recognised,
    vetted,
    with_handoff,
)

ME = actor("supervisor", user="u-me")
PARTNER_HANDOFF = Handoff(HandoffKind.PARTNER, PARTNER, "u-requester")
OFFICE_HANDOFF = Handoff(HandoffKind.OFFICE, OTHER_OFFICE, "u-requester")


def _row(process: Process, source: str, target: str) -> Transition:
    row = find_transition(process, source, target)
    assert row is not None
    return row


ANY_ROW = _row(Process.CASE_STAGE, "intake", "vetting")
REOPEN_AT_DETERMINATION = _row(Process.CASE_STAGE, "closed", "determination")
SEND_TO_PARTNER = _row(Process.HANDOFF, "approved", "sent")
HAND_OFF_STAGE = _row(Process.CASE_STAGE, "determination", "handed_off")

# (guard, facts where it holds, facts where it fails, actor, transition)
CASES = [
    ("actor_in_owning_office", facts(), facts(office=OTHER_OFFICE), ME, ANY_ROW),
    (
        "actor_in_receiving_office",
        facts(office=OTHER_OFFICE, handoff=Handoff(HandoffKind.OFFICE, OFFICE, "x")),
        facts(handoff=OFFICE_HANDOFF),
        ME,
        ANY_ROW,
    ),
    ("case_active", facts(stage=Stage.RESETTLEMENT), facts(stage=Stage.HANDED_OFF), ME, ANY_ROW),
    ("case_in_vetting_stage", facts(stage=Stage.VETTING), facts(), ME, ANY_ROW),
    ("case_in_determination_stage", facts(stage=Stage.DETERMINATION), facts(), ME, ANY_ROW),
    ("case_in_resettlement_stage", facts(stage=Stage.RESETTLEMENT), facts(), ME, ANY_ROW),
    (
        "reopen_not_beyond_last_stage",
        facts(stage=Stage.CLOSED, last_active_stage=Stage.RESETTLEMENT),
        facts(stage=Stage.CLOSED, last_active_stage=Stage.VETTING),
        ME,
        REOPEN_AT_DETERMINATION,
    ),
    (
        "companion_can_move",
        facts(handoff_status=HandoffStatus.APPROVED),
        facts(handoff_status=HandoffStatus.REQUESTED),
        ME,
        HAND_OFF_STAGE,
    ),
    (
        "vetting_interview_recorded",
        facts(vetting_interviewers=frozenset({"u-1"})),
        facts(),
        ME,
        ANY_ROW,
    ),
    (
        "vetting_checks_complete",
        vetted(),
        vetted(credibility_assessment="pending"),
        ME,
        ANY_ROW,
    ),
    ("duplicate_alerts_reviewed", facts(), facts(open_duplicate_alerts=1), ME, ANY_ROW),
    (
        "identity_verified",
        vetted(),
        vetted(identity_verification=IdentityVerification.NOT_VERIFIED),
        ME,
        ANY_ROW,
    ),
    (
        "screening_cleared",
        vetted(),
        vetted(security_screening=SecurityScreening.PENDING),
        ME,
        ANY_ROW,
    ),
    (
        "screening_not_flagged",
        facts(security_screening=SecurityScreening.PENDING),
        facts(security_screening=SecurityScreening.FLAGGED),
        ME,
        ANY_ROW,
    ),
    ("vetting_cleared", vetted(), vetted(vetting=VettingState.REJECTED), ME, ANY_ROW),
    (
        "refugee_status_recognized",
        recognised(),
        recognised(first_instance_outcome=DeterminationOutcome.EXCLUDED),
        ME,
        ANY_ROW,
    ),
    (
        "first_instance_negative",
        facts(first_instance_outcome=DeterminationOutcome.REJECTED),
        facts(first_instance_outcome=DeterminationOutcome.DERIVATIVE_STATUS),
        ME,
        ANY_ROW,
    ),
    (
        "submission_complete",
        facts(submission=complete_submission()),
        facts(submission=Submission("CAN", Priority.URGENT, ())),
        ME,
        ANY_ROW,
    ),
    (
        "medical_examination_completed",
        vetted(),
        vetted(medical_examination=MedicalExamination.PENDING),
        ME,
        ANY_ROW,
    ),
    ("fit_to_travel", vetted(), vetted(fit_to_travel=False), ME, ANY_ROW),
    (
        "best_interests_assessed",
        facts(specific_needs=frozenset({"SC-UC"}), best_interests_assessment_done=True),
        facts(specific_needs=frozenset({"SC-UC"})),
        ME,
        ANY_ROW,
    ),
    (
        "resettlement_consent",
        facts(submission=complete_submission(), consents=(consent(),)),
        facts(submission=complete_submission(), consents=(consent(recipient="SWE"),)),
        ME,
        ANY_ROW,
    ),
    (
        "state_decision_pending",
        facts(state_decision=StateDecision.SUSPENDED),
        facts(state_decision=StateDecision.DENIED),
        ME,
        ANY_ROW,
    ),
    (
        "state_decision_allows_resubmission",
        facts(state_decision=StateDecision.DENIED),
        facts(state_decision=StateDecision.DEFERRED),
        ME,
        ANY_ROW,
    ),
    (
        "state_decision_allows_departure",
        facts(state_decision=StateDecision.SPLIT_DECISION),
        facts(state_decision=StateDecision.WITHDRAWN),
        ME,
        ANY_ROW,
    ),
    (
        "handoff_target_valid",
        facts(handoff=OFFICE_HANDOFF),
        facts(handoff=Handoff(HandoffKind.OFFICE, OFFICE, "u-requester")),
        ME,
        ANY_ROW,
    ),
    (
        "consent_for_partner",
        facts(handoff=PARTNER_HANDOFF, consents=(consent(ConsentPurpose.DATA_SHARING, PARTNER),)),
        facts(handoff=PARTNER_HANDOFF, consents=(consent(ConsentPurpose.REFERRAL, "OTHER"),)),
        ME,
        ANY_ROW,
    ),
    (
        "handoff_to_office",
        facts(handoff=OFFICE_HANDOFF),
        facts(handoff=PARTNER_HANDOFF),
        ME,
        ANY_ROW,
    ),
    (
        "handoff_to_partner",
        facts(handoff=PARTNER_HANDOFF),
        facts(handoff=OFFICE_HANDOFF),
        ME,
        ANY_ROW,
    ),
    (
        "partner_handoff_approved",
        facts(handoff=PARTNER_HANDOFF, handoff_status=HandoffStatus.APPROVED),
        facts(handoff=PARTNER_HANDOFF, handoff_status=HandoffStatus.REQUESTED),
        ME,
        ANY_ROW,
    ),
    (
        "not_vetting_interviewer",
        facts(vetting_interviewers=frozenset({"u-other"})),
        facts(vetting_interviewers=frozenset({"u-other", "u-me"})),
        ME,
        ANY_ROW,
    ),
    ("not_vetting_referrer", facts(), facts(vetting_referred_by="u-me"), ME, ANY_ROW),
    (
        "not_assessment_author",
        facts(assessment_authors=frozenset({"u-other"})),
        facts(assessment_authors=frozenset({"u-me"})),
        ME,
        ANY_ROW,
    ),
    (
        "not_first_instance_decider",
        facts(first_instance_decided_by="u-other"),
        facts(first_instance_decided_by="u-me"),
        ME,
        ANY_ROW,
    ),
    (
        "not_rrf_preparer",
        facts(rrf_preparers=frozenset({"u-other"})),
        facts(rrf_preparers=frozenset({"u-me", "u-other"})),
        ME,
        ANY_ROW,
    ),
    (
        "not_handoff_requester",
        facts(handoff=OFFICE_HANDOFF),
        facts(handoff=replace(OFFICE_HANDOFF, requested_by="u-me")),
        ME,
        ANY_ROW,
    ),
]


@pytest.mark.parametrize(("name", "holds", "fails", "who", "row"), CASES, ids=[c[0] for c in CASES])
def test_guard_holds_and_fails(
    name: str, holds: CaseFacts, fails: CaseFacts, who: Actor, row: Transition
) -> None:
    check = GUARDS[name].check
    assert check(holds, who, row) is True
    assert check(fails, who, row) is False


def test_every_guard_is_tested_above() -> None:
    assert {c[0] for c in CASES} == set(GUARDS)


@pytest.mark.parametrize("name", sorted(GUARDS))
def test_guard_messages_are_sentences_without_placeholders(name: str) -> None:
    message = GUARDS[name].message
    assert message[0].isupper()
    assert message.endswith(".")
    assert "{" not in message
    assert len(message) < 160


@pytest.mark.parametrize(
    "name",
    [
        "actor_in_receiving_office",
        "consent_for_partner",
        "handoff_target_valid",
        "handoff_to_office",
        "handoff_to_partner",
        "not_handoff_requester",
        "resettlement_consent",
        "submission_complete",
    ],
)
def test_guards_fail_closed_without_their_facts(name: str) -> None:
    assert GUARDS[name].check(facts(), ME, ANY_ROW) is False


def test_an_officeless_actor_is_in_no_office() -> None:
    admin = Actor("u-admin", permissions_for("admin"), None)
    assert not GUARDS["actor_in_owning_office"].check(facts(), admin, ANY_ROW)
    receiving = facts(handoff=OFFICE_HANDOFF)
    assert not GUARDS["actor_in_receiving_office"].check(receiving, admin, ANY_ROW)


def test_partner_consent_is_not_needed_between_offices() -> None:
    assert GUARDS["consent_for_partner"].check(with_handoff(), ME, ANY_ROW)


@pytest.mark.parametrize(
    ("last", "target", "allowed"),
    [
        (Stage.RESETTLEMENT, "resettlement", True),
        (Stage.RESETTLEMENT, "intake", True),
        (Stage.VETTING, "vetting", True),
        (Stage.VETTING, "determination", False),
        (None, "intake", True),
        (None, "vetting", False),
    ],
)
def test_reopening_goes_back_to_the_stage_left_or_earlier(
    last: Stage | None, target: str, allowed: bool
) -> None:
    row = _row(Process.CASE_STAGE, "closed", target)
    closed = facts(stage=Stage.CLOSED, last_active_stage=last)
    assert GUARDS["reopen_not_beyond_last_stage"].check(closed, ME, row) is allowed


def test_the_reopen_guard_refuses_a_target_that_is_not_an_active_stage() -> None:
    row = _row(Process.CASE_STAGE, "intake", "closed")
    assert not GUARDS["reopen_not_beyond_last_stage"].check(facts(), ME, row)


@pytest.mark.parametrize(
    ("stage", "first", "appeal", "recognised_now"),
    [
        (DeterminationStage.NOTIFIED, DeterminationOutcome.RECOGNIZED, None, True),
        (DeterminationStage.CLOSED, DeterminationOutcome.DERIVATIVE_STATUS, None, True),
        (DeterminationStage.DECIDED, DeterminationOutcome.RECOGNIZED, None, False),
        (DeterminationStage.REOPENED, DeterminationOutcome.RECOGNIZED, None, False),
        (
            DeterminationStage.APPEAL_DECIDED,
            DeterminationOutcome.REJECTED,
            AppealOutcome.OVERTURNED,
            True,
        ),
        (
            DeterminationStage.APPEAL_DECIDED,
            DeterminationOutcome.EXCLUDED,
            AppealOutcome.UPHELD,
            False,
        ),
        (DeterminationStage.NOTIFIED, DeterminationOutcome.REJECTED, None, False),
        (DeterminationStage.CLOSED, None, None, False),
    ],
)
def test_status_is_recognised_by_a_notified_positive_decision_or_on_appeal(
    stage: DeterminationStage,
    first: DeterminationOutcome | None,
    appeal: AppealOutcome | None,
    recognised_now: bool,
) -> None:
    case = facts(determination=stage, first_instance_outcome=first, appeal_outcome=appeal)
    assert case.status_recognized is recognised_now


@pytest.mark.parametrize("code", ["SC-UC", "SC-SC", "SC-CH", "SC-IC", "SC-FC"])
def test_every_child_at_risk_code_needs_a_best_interests_assessment(code: str) -> None:
    case = facts(specific_needs=frozenset({code, "LP-RR"}))
    assert case.child_at_risk
    assert not GUARDS["best_interests_assessed"].check(case, ME, ANY_ROW)


@pytest.mark.parametrize("code", ["LP-RR", "CR-CP", "SV-VA", "FU-TR"])
def test_other_needs_need_no_best_interests_assessment(code: str) -> None:
    assert not facts(specific_needs=frozenset({code})).child_at_risk


def test_expired_or_withdrawn_consent_is_no_consent() -> None:
    submission = complete_submission()
    expired = consent(given_at=NOW - timedelta(days=30), expires_at=NOW)
    withdrawn = consent(withdrawn_at=NOW + timedelta(hours=1))
    for record in (expired, withdrawn):
        case = facts(submission=submission, consents=(record,))
        assert not GUARDS["resettlement_consent"].check(case, ME, ANY_ROW)
    partner = facts(
        handoff=PARTNER_HANDOFF,
        consents=(consent(ConsentPurpose.REFERRAL, PARTNER, withdrawn_at=NOW),),
    )
    assert not GUARDS["consent_for_partner"].check(partner, ME, ANY_ROW)


def test_resettlement_consent_does_not_allow_a_partner_hand_off() -> None:
    case = facts(
        handoff=PARTNER_HANDOFF,
        consents=(consent(ConsentPurpose.RESETTLEMENT_SUBMISSION, PARTNER),),
    )
    assert not GUARDS["consent_for_partner"].check(case, ME, ANY_ROW)


@pytest.mark.parametrize(
    ("submission", "complete"),
    [
        (complete_submission(), True),
        (
            Submission(
                "SWE",
                Priority.EMERGENCY,
                (SubmissionCategory.MEDICAL_NEEDS, SubmissionCategory.WOMEN_AND_GIRLS_AT_RISK),
            ),
            True,
        ),
        (Submission("XXA", Priority.NORMAL, (SubmissionCategory.MEDICAL_NEEDS,)), False),
        (Submission("ZZZ", Priority.NORMAL, (SubmissionCategory.MEDICAL_NEEDS,)), False),
        (Submission(None, Priority.NORMAL, (SubmissionCategory.MEDICAL_NEEDS,)), False),
        (Submission("CAN", None, (SubmissionCategory.MEDICAL_NEEDS,)), False),
        (Submission("CAN", Priority.NORMAL, ()), False),
        (
            Submission(
                "CAN",
                Priority.NORMAL,
                (SubmissionCategory.MEDICAL_NEEDS, SubmissionCategory.MEDICAL_NEEDS),
            ),
            False,
        ),
        (Submission("CAN", Priority.NORMAL, tuple(SubmissionCategory)[:3]), False),
    ],
)
def test_a_submission_needs_a_state_a_priority_and_one_or_two_categories(
    submission: Submission, complete: bool
) -> None:
    assert submission.is_complete is complete


def test_destination_countries_are_states() -> None:
    assert is_destination_country("CAN")
    for code in ("XXA", "XXB", "XXC", "XXX", "can", "CA", None, 124):
        assert not is_destination_country(code)


def test_facts_from_storage_are_coerced_to_the_enums() -> None:
    case = CaseFacts(
        office=OFFICE,
        now=NOW,
        stage="vetting",  # type: ignore[arg-type]
        vetting="cleared",  # type: ignore[arg-type]
        resettlement="submitted",  # type: ignore[arg-type]
        security_screening="flagged",  # type: ignore[arg-type]
        state_decision="denied",  # type: ignore[arg-type]
    )
    assert case.stage is Stage.VETTING
    assert case.vetting is VettingState.CLEARED
    assert case.resettlement is ResettlementStage.SUBMITTED
    assert case.security_screening is SecurityScreening.FLAGGED
    assert case.state_decision is StateDecision.DENIED
    assert case.state_of(Process.RESETTLEMENT) == "submitted"


def test_facts_refuse_unknown_states_and_naive_times() -> None:
    with pytest.raises(ValueError, match="not a valid Stage"):
        CaseFacts(office=OFFICE, now=NOW, stage="archived")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone-aware"):
        CaseFacts(office=OFFICE, now=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="not a valid"):
        Submission("CAN", "soon", ())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a valid"):
        Handoff("courier", "X", "u")  # type: ignore[arg-type]


def test_state_of_and_check_status_read_every_process_and_check() -> None:
    case = vetted()
    assert [case.state_of(p) for p in Process] == [
        "vetting",
        "cleared",
        "registered",
        "not_considered",
        "none",
    ]
    assert {c: case.check_status(c) for c in CheckType}[CheckType.MEDICAL_EXAMINATION] == (
        "completed"
    )
    assert case.checks_complete


def test_actor_needs_an_id_and_comes_from_a_staff_principal() -> None:
    with pytest.raises(ValueError, match="user with an id"):
        Actor("", frozenset(), OFFICE)
    principal = Principal.for_role("supervisor", user_id="u-9", office=OFFICE)
    assert Actor.from_principal(principal) == Actor("u-9", permissions_for("supervisor"), OFFICE)
    with pytest.raises(ValueError, match="staff user"):
        Actor.from_principal(Principal.for_role("device", user_id=None, office=OFFICE))


def test_unmet_lists_failing_guards_in_table_order() -> None:
    row = _row(Process.VETTING, "in_progress", "cleared")
    case = facts(stage=Stage.VETTING, vetting=VettingState.IN_PROGRESS)
    assert unmet(row, case, ME) == (
        "vetting_interview_recorded",
        "vetting_checks_complete",
        "identity_verified",
        "screening_cleared",
    )


def test_decrypted_facts_stay_out_of_repr() -> None:
    case = facts(specific_needs=frozenset({"SV-VA"}), consents=(consent(),))
    assert "SV-VA" not in repr(case)
    assert "member-1" not in repr(case)
