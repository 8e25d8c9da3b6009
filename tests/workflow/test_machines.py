"""The tables are well formed, and the contract's enum values are exactly the issue's."""

from __future__ import annotations

from collections import deque
from enum import StrEnum

import pytest

from casework.authz.permissions import ROLE_PERMISSIONS, STAFF_ROLES
from casework.cases.codes import ResettlementStage, Stage
from casework.workflow import engine, machines
from casework.workflow.codes import (
    CheckType,
    CredibilityAssessment,
    IdentityVerification,
    MedicalExamination,
    Priority,
    SecurityScreening,
    SubmissionCategory,
)
from casework.workflow.consent import ConsentPurpose
from casework.workflow.guards import GUARDS
from casework.workflow.machines import (
    COMPANIONS,
    INITIAL_STATES,
    PROCESS_GUARDS,
    SCOPE_GUARDS,
    STATES,
    TABLES,
    AppealOutcome,
    DeterminationOutcome,
    DeterminationStage,
    FourEyes,
    HandoffStatus,
    Process,
    ReviewOutcome,
    Scope,
    StateDecision,
    Transition,
    VettingState,
    find_transition,
    transitions_from,
)

ALL_ROWS = [t for table in TABLES.values() for t in table]


def _values(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


@pytest.mark.parametrize(
    ("enum", "values"),
    [
        (
            DeterminationStage,
            [
                "registered",
                "interview_scheduled",
                "interviewed",
                "assessment_drafted",
                "supervisor_review",
                "decided",
                "notified",
                "appeal_lodged",
                "appeal_decided",
                "closed",
                "reopened",
            ],
        ),
        (DeterminationOutcome, ["recognized", "rejected", "excluded", "derivative_status"]),
        (AppealOutcome, ["upheld", "overturned"]),
        (
            ResettlementStage,
            [
                "not_considered",
                "identified",
                "needs_assessment",
                "deprioritised",
                "interview",
                "rrf_preparation",
                "submission_review",
                "submitted",
                "state_decision",
                "pending_departure_arrangements",
                "departed",
                "arrived",
            ],
        ),
        (ReviewOutcome, ["recommended", "returned_to_caseworker", "not_recommended"]),
        (
            StateDecision,
            ["accepted", "denied", "deferred", "suspended", "split_decision", "withdrawn"],
        ),
        (Priority, ["emergency", "urgent", "normal"]),
        (
            SubmissionCategory,
            [
                "legal_physical_protection_needs",
                "survivors_of_violence_torture",
                "medical_needs",
                "women_and_girls_at_risk",
                "restoring_family_unity",
                "children_adolescents_at_risk",
                "lack_of_foreseeable_alternative_durable_solutions",
            ],
        ),
        (ConsentPurpose, ["referral", "resettlement_submission", "data_sharing"]),
        (
            CheckType,
            [
                "identity_verification",
                "security_screening",
                "medical_examination",
                "credibility_assessment",
            ],
        ),
        (SecurityScreening, ["pending", "cleared", "flagged"]),
        (MedicalExamination, ["pending", "completed"]),
        (CredibilityAssessment, ["pending", "credible", "partially_credible", "not_credible"]),
        (IdentityVerification, ["pending", "verified", "not_verified"]),
        (
            VettingState,
            ["not_started", "in_progress", "cleared", "referred_for_review", "rejected"],
        ),
        (Process, ["case_stage", "vetting", "determination", "resettlement", "handoff"]),
    ],
)
def test_contract_enums_have_exactly_the_issues_values(
    enum: type[StrEnum], values: list[str]
) -> None:
    assert _values(enum) == values


def test_review_outcomes_are_the_names_of_the_review_transitions() -> None:
    review = [t for t in TABLES[Process.RESETTLEMENT] if t.from_state == "submission_review"]
    assert sorted(t.name for t in review) == sorted(_values(ReviewOutcome))


@pytest.mark.parametrize("process", list(Process))
def test_every_state_is_reachable_from_the_initial_state(process: Process) -> None:
    seen, queue = {INITIAL_STATES[process]}, deque([INITIAL_STATES[process]])
    while queue:
        for row in transitions_from(process, queue.popleft()):
            if row.to_state not in seen:
                seen.add(row.to_state)
                queue.append(row.to_state)
    assert seen == set(_values(STATES[process]))


def test_only_arrival_is_final() -> None:
    final = {
        (process.value, state)
        for process in Process
        for state in _values(STATES[process])
        if not transitions_from(process, state)
    }
    assert final == {("resettlement", "arrived")}


def test_rows_belong_to_their_process_and_use_its_states() -> None:
    for process, table in TABLES.items():
        states = set(_values(STATES[process]))
        for row in table:
            assert row.process is process
            assert {row.from_state, row.to_state} <= states
            assert row.from_state != row.to_state, "no self-loops: a transition changes state"


def test_no_two_rows_join_the_same_states() -> None:
    edges = [(t.process, t.from_state, t.to_state) for t in ALL_ROWS]
    assert len(edges) == len(set(edges))
    for row in ALL_ROWS:
        assert find_transition(row.process, row.from_state, row.to_state) is row


def test_every_row_needs_a_permission_that_a_staff_role_holds() -> None:
    for row in ALL_ROWS:
        assert row.permission is not None
        holders = [r for r in STAFF_ROLES if row.permission in ROLE_PERMISSIONS[r]]
        assert holders, f"{row.name}: nobody could ever take it"
        assert "device" not in [
            r for r in ROLE_PERMISSIONS if row.permission in ROLE_PERMISSIONS[r]
        ]


def test_every_guard_named_in_a_table_exists() -> None:
    assert {g for row in ALL_ROWS for g in row.guards} <= set(GUARDS)


def test_every_guard_is_used_by_some_row() -> None:
    assert set(GUARDS) == {g for row in ALL_ROWS for g in row.guards}


def test_every_row_checks_exactly_one_office_scope_first() -> None:
    scope_guards = set(SCOPE_GUARDS.values())
    for row in ALL_ROWS:
        assert row.guards[0] == SCOPE_GUARDS[row.scope]
        assert len(scope_guards & set(row.guards)) == 1


def test_only_accepting_or_declining_a_hand_off_happens_in_the_receiving_office() -> None:
    receiving = {t.name for t in ALL_ROWS if t.scope is Scope.RECEIVING_OFFICE}
    assert receiving == {"accept", "decline"}


def test_every_row_checks_its_process_stage() -> None:
    for row in ALL_ROWS:
        assert set(PROCESS_GUARDS[row.process]) <= set(row.guards)


def test_four_eyes_rows_carry_their_guards() -> None:
    for row in ALL_ROWS:
        four_eyes_guards = {g for g in row.guards if g.startswith("not_")}
        assert four_eyes_guards == {person.guard for person in row.four_eyes}


@pytest.mark.parametrize(
    ("process", "names", "people"),
    [
        (
            Process.VETTING,
            {"clear", "reject", "refer_for_review"},
            {FourEyes.VETTING_INTERVIEWER},
        ),
        (Process.DETERMINATION, {"decide", "return_assessment"}, {FourEyes.ASSESSMENT_AUTHOR}),
        (
            Process.DETERMINATION,
            {"decide_appeal"},
            {FourEyes.ASSESSMENT_AUTHOR, FourEyes.FIRST_INSTANCE_DECIDER},
        ),
        (Process.RESETTLEMENT, set(_values(ReviewOutcome)), {FourEyes.RRF_PREPARER}),
        (Process.HANDOFF, {"approve", "send_to_partner"}, {FourEyes.HANDOFF_REQUESTER}),
    ],
)
def test_fate_decisions_need_a_second_person(
    process: Process, names: set[str], people: set[FourEyes]
) -> None:
    rows = [t for t in TABLES[process] if t.name in names]
    assert {t.name for t in rows} == names
    for row in rows:
        assert people <= set(row.four_eyes)


def test_a_vetting_review_needs_someone_other_than_the_referrer() -> None:
    for row in transitions_from(Process.VETTING, VettingState.REFERRED_FOR_REVIEW):
        if row.to_state in {VettingState.CLEARED, VettingState.REJECTED}:
            assert FourEyes.VETTING_REFERRER in row.four_eyes


def _guards_with_companion(row: Transition) -> set[str]:
    guards = set(row.guards)
    other = COMPANIONS.get((row.process, row.to_state))
    if other is not None:
        process, target = other
        guards |= {g for t in TABLES[process] if t.to_state == target for g in t.guards}
    return guards


def test_no_way_into_resettlement_skips_vetting_or_status() -> None:
    for row in TABLES[Process.CASE_STAGE]:
        if row.to_state == Stage.RESETTLEMENT:
            assert {"vetting_cleared", "screening_not_flagged", "refugee_status_recognized"} <= set(
                row.guards
            )


def test_no_way_into_submitted_skips_screening_medical_child_or_consent() -> None:
    wanted = {
        "screening_cleared",
        "medical_examination_completed",
        "best_interests_assessed",
        "resettlement_consent",
        "submission_complete",
        "vetting_cleared",
    }
    rows = [t for t in TABLES[Process.RESETTLEMENT] if t.to_state == ResettlementStage.SUBMITTED]
    assert len(rows) == 2  # recommended, and resumed after a deferral or suspension
    for row in rows:
        assert wanted <= set(row.guards)


def test_every_way_to_a_partner_needs_partner_consent() -> None:
    for row in ALL_ROWS:
        if row.to_state in {HandoffStatus.SENT, Stage.HANDED_OFF}:
            assert "consent_for_partner" in _guards_with_companion(row)


def test_companions_pair_up_and_exist() -> None:
    for (process, target), (other, other_target) in COMPANIONS.items():
        assert COMPANIONS[(other, other_target)] == (process, target)
        assert any(t.to_state == target for t in TABLES[process])
        for row in TABLES[process]:
            if row.to_state == target:
                assert "companion_can_move" in row.guards


@pytest.mark.parametrize(
    ("process", "name", "field", "enum"),
    [
        (Process.CASE_STAGE, "close", "reason", machines.ClosureReason),
        (Process.CASE_STAGE, "reopen", "reason", machines.ReopenReason),
        (Process.DETERMINATION, "close", "reason", machines.ClosureReason),
        (Process.DETERMINATION, "reopen", "reason", machines.ReopenReason),
        (Process.DETERMINATION, "decide", "outcome", DeterminationOutcome),
        (Process.DETERMINATION, "decide_appeal", "outcome", AppealOutcome),
        (Process.RESETTLEMENT, "record_state_decision", "decision", StateDecision),
    ],
)
def test_rows_that_take_a_choice(
    process: Process, name: str, field: str, enum: type[StrEnum]
) -> None:
    rows = [t for t in TABLES[process] if t.name == name]
    assert rows
    for row in rows:
        assert row.choice is not None
        assert (row.choice.field, row.choice.values) == (field, tuple(_values(enum)))


def test_other_rows_take_no_choice() -> None:
    with_choice = {(t.process, t.name) for t in ALL_ROWS if t.choice is not None}
    assert with_choice == {
        (Process.CASE_STAGE, "close"),
        (Process.CASE_STAGE, "reopen"),
        (Process.DETERMINATION, "close"),
        (Process.DETERMINATION, "reopen"),
        (Process.DETERMINATION, "decide"),
        (Process.DETERMINATION, "decide_appeal"),
        (Process.RESETTLEMENT, "record_state_decision"),
    }


def test_a_typo_in_a_table_stops_the_import() -> None:
    row = machines._Row("intake", "vetted", "start_vetting", machines.P.CASES_WRITE)
    with pytest.raises(ValueError, match="unknown states"):
        machines._build(Process.CASE_STAGE, [row])


def test_an_unknown_guard_stops_the_import(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = Transition(Process.VETTING, "a", "b", "x", machines.P.VETTING_DECIDE, ("no_such_guard",))
    monkeypatch.setattr(engine, "TABLES", {Process.VETTING: (bad,)})
    with pytest.raises(RuntimeError, match="unknown guard 'no_such_guard'"):
        engine._check_tables()


def test_the_published_workflow_lists_every_row_and_guard() -> None:
    document = engine.describe_workflow()
    assert [p["name"] for p in document["processes"]] == _values(Process)
    for process in document["processes"]:
        name = Process(process["name"])
        assert process["initial_state"] == INITIAL_STATES[name]
        assert process["states"] == _values(STATES[name])
        assert len(process["transitions"]) == len(TABLES[name])
        first = process["transitions"][0]
        assert set(first) == {
            "name",
            "from",
            "to",
            "permission",
            "guards",
            "four_eyes",
            "scope",
            "choice",
        }
    assert {g["name"] for g in document["guards"]} == set(GUARDS)
