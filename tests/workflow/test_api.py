"""The workflow API: published machines, transitions with their refusals, four-eyes,
If-Match, the access log and history, closure and reopening, the case read."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.audit.models import AuditEntry
from casework.workflow.guards import GUARDS
from casework.workflow.machines import TABLES, Process
from casework.workflow.models import CaseWorkflow
from tests.cases.conftest import CASES, audit_entries
from tests.conftest import erase_by_two_people
from tests.workflow.conftest import SUBMISSION, Workflow, who

INVALID = "urn:casework:problem:invalid-transition"


def _fields(entry: AuditEntry) -> list[str]:
    names: list[str] = json.loads(entry.fields)
    return names


# --- GET /api/v1/workflow ------------------------------------------------------------------


def test_workflow_lists_every_process_transition_and_guard(
    client: FlaskClient, wf: Workflow
) -> None:
    response = client.get("/api/v1/workflow", headers=who("admin"))
    assert response.status_code == 200
    body = response.get_json()
    by_name = {p["name"]: p for p in body["processes"]}
    assert set(by_name) == {p.value for p in Process}
    assert by_name["vetting"]["initial_state"] == "not_started"
    assert len(by_name["determination"]["transitions"]) == len(TABLES[Process.DETERMINATION])
    decide = next(t for t in by_name["determination"]["transitions"] if t["to"] == "decided")
    assert decide["permission"] == "determination:decide"
    assert decide["four_eyes"] == ["assessment_author"]
    assert "not_assessment_author" in decide["guards"]
    assert decide["choice"]["field"] == "outcome"
    assert decide["scope"] == "owning_office"
    assert {g["name"] for g in body["guards"]} == set(GUARDS)


def test_workflow_needs_workflow_read(client: FlaskClient, wf: Workflow) -> None:
    assert client.get("/api/v1/workflow", headers=who("auditor")).status_code == 403
    assert client.get("/api/v1/workflow").status_code == 401


# --- transitions: success, access log, history, versions ------------------------------------


def test_a_transition_moves_the_case_bumps_the_version_and_is_audited(
    client: FlaskClient, db_session: Session, wf: Workflow
) -> None:
    ref = wf.register()
    response = wf.move("cw", ref, "case_stage", "vetting")
    assert response.status_code == 200
    assert response.headers["ETag"] == '"v2"'
    body = response.get_json()
    assert body["reference"] == ref
    assert body["version"] == 2
    assert body["workflow"]["states"]["case_stage"] == "vetting"
    assert wf.read("cw", ref)["stage"] == "vetting"
    (entry,) = audit_entries(db_session, ref, "case.transition")
    assert _fields(entry) == ["stage"]
    assert entry.actor == "cw-1"
    history = client.get(f"{CASES}/{ref}/history", headers=who("cw")).get_json()["items"]
    assert [i["action"] for i in history] == ["case.create", "case.transition"]
    assert history[-1]["fields"] == ["stage"]


def test_if_match_is_required_and_must_be_current(client: FlaskClient, wf: Workflow) -> None:
    ref = wf.register()
    body = {"process": "case_stage", "to": "vetting"}
    url = f"{CASES}/{ref}/transitions"
    assert client.post(url, json=body, headers=who("cw")).status_code == 428
    stale = client.post(url, json=body, headers={**who("cw"), "If-Match": '"v9"'})
    assert stale.status_code == 412
    assert wf.case(ref).stage == "intake"


def test_out_of_office_and_unknown_cases_are_404_and_erased_410(
    client: FlaskClient, wf: Workflow
) -> None:
    ref = wf.register()
    assert wf.move("outsider", ref, "case_stage", "vetting").status_code == 404
    assert client.get(f"{CASES}/{ref}", headers=who("outsider")).status_code == 404
    assert wf.move("cw", "0000000000X", "case_stage", "vetting").status_code == 404
    erase = erase_by_two_people(client, ref, who("sup"), who("sup2"))
    assert erase.status_code == 200
    assert wf.move("cw", ref, "case_stage", "vetting").status_code == 410


def test_a_role_without_the_rows_permission_gets_403(wf: Workflow) -> None:
    ref = wf.register()
    wf.ok("cw", ref, "case_stage", "vetting")
    refused = wf.move("cw", ref, "vetting", "in_progress")  # vetting:conduct
    assert refused.status_code == 403
    assert refused.get_json()["type"] == "urn:casework:problem:forbidden"
    assert wf.move("cw", ref, "case_stage", "closed", reason="other").status_code == 403
    assert wf.move("admin", ref, "case_stage", "closed", reason="other").status_code == 403


def test_409_names_unmet_guards_and_allowed_transitions(wf: Workflow) -> None:
    ref = wf.register()
    no_row = wf.move("cw", ref, "case_stage", "determination")
    assert no_row.status_code == 409
    problem = no_row.get_json()
    assert problem["type"] == INVALID
    assert problem["unmet_guards"] == []
    assert [(t["process"], t["to"]) for t in problem["allowed_transitions"]] == [
        ("case_stage", "vetting")
    ]
    wf.ok("cw", ref, "case_stage", "vetting")
    guarded = wf.move("cw", ref, "case_stage", "determination")
    assert guarded.status_code == 409
    problem = guarded.get_json()
    assert problem["unmet_guards"] == ["vetting_cleared"]
    assert GUARDS["vetting_cleared"].message in problem["detail"]
    assert all(t["process"] == "case_stage" for t in problem["allowed_transitions"])


def test_unknown_targets_and_choices_are_422(wf: Workflow) -> None:
    ref = wf.register()
    assert wf.move("cw", ref, "vetting", "nowhere").status_code == 422
    assert wf.move("cw", ref, "case_stage", "vetting", reason="other").status_code == 422
    wf.ok("cw", ref, "case_stage", "vetting")
    assert wf.move("sup", ref, "case_stage", "closed").status_code == 422
    assert wf.move("sup", ref, "case_stage", "closed", reason="bored").status_code == 422
    assert wf.case(ref).stage == "vetting"


# --- every guard this feature's facts decide, refused with its message ------------------

_REJECTED = {"first_instance_outcome": "rejected"}
_REVIEW = {"resettlement": "submission_review", "stage": "resettlement", "vetting": "cleared"}
_DECISION = {"stage": "resettlement", "resettlement": "state_decision", "vetting": "cleared"}

GUARD_CASES: list[tuple[str, dict[str, Any], str, str, str, dict[str, str]]] = [
    # guard, state, who, process, to, choices
    ("case_in_vetting_stage", {}, "vo", "vetting", "in_progress", {}),
    ("case_in_determination_stage", {"stage": "vetting"}, "cw", "determination",
     "interview_scheduled", {}),
    ("case_in_resettlement_stage", {"stage": "determination"}, "cw", "resettlement",
     "identified", {}),
    ("vetting_cleared", {"stage": "vetting", "vetting": "in_progress"}, "cw", "case_stage",
     "determination", {}),
    ("refugee_status_recognized",
     {"stage": "determination", "vetting": "cleared", "determination": "notified", **_REJECTED},
     "cw", "case_stage", "resettlement", {}),
    ("first_instance_negative",
     {"stage": "determination", "determination": "notified",
      "first_instance_outcome": "recognized"}, "cw", "determination", "appeal_lodged", {}),
    ("not_assessment_author",
     {"stage": "determination", "determination": "supervisor_review",
      "assessment_authors": ["sup-1"]}, "sup", "determination", "decided",
     {"outcome": "recognized"}),
    ("not_assessment_author",
     {"stage": "determination", "determination": "appeal_lodged", **_REJECTED,
      "assessment_authors": ["sup-1"], "first_instance_decided_by": "sup-2"}, "sup",
     "determination", "appeal_decided", {"outcome": "upheld"}),
    ("not_first_instance_decider",
     {"stage": "determination", "determination": "appeal_lodged", **_REJECTED,
      "assessment_authors": ["cw-1"], "first_instance_decided_by": "sup-1"}, "sup",
     "determination", "appeal_decided", {"outcome": "overturned"}),
    ("submission_complete",
     {"stage": "resettlement", "resettlement": "rrf_preparation", "vetting": "cleared",
      "submission": {"priority": "normal", "categories": []}}, "cw", "resettlement",
     "submission_review", {}),
    ("best_interests_assessed",
     {"stage": "resettlement", "resettlement": "rrf_preparation", "vetting": "cleared",
      "needs": ["SC-UC"], "submission": SUBMISSION}, "cw", "resettlement",
     "submission_review", {}),
    ("not_rrf_preparer", {**_REVIEW, "submission": SUBMISSION, "rrf_preparers": ["sup-1"]},
     "sup", "resettlement", "submitted", {}),
    ("screening_cleared", {**_REVIEW, "submission": SUBMISSION, "external": "pending"},
     "sup", "resettlement", "submitted", {}),
    ("medical_examination_completed",
     {**_REVIEW, "submission": SUBMISSION, "external": "pending"}, "sup", "resettlement",
     "submitted", {}),
    ("state_decision_pending", {**_DECISION, "state_decision": "accepted"}, "cw",
     "resettlement", "submitted", {}),
    ("state_decision_allows_resubmission", {**_DECISION, "state_decision": "accepted"}, "cw",
     "resettlement", "rrf_preparation", {}),
    ("state_decision_allows_departure", {**_DECISION, "state_decision": "denied"}, "cw",
     "resettlement", "pending_departure_arrangements", {}),
    ("case_active", {"stage": "closed", "last_active_stage": "vetting"}, "cw", "handoff",
     "requested", {}),
    ("reopen_not_beyond_last_stage", {"stage": "closed", "last_active_stage": "vetting"},
     "sup", "case_stage", "determination", {"reason": "new_information"}),
    ("not_vetting_referrer",
     {"stage": "vetting", "vetting": "referred_for_review", "vetting_referred_by": "sup-1"},
     "sup", "vetting", "cleared", {}),
    ("not_vetting_interviewer",
     {"stage": "vetting", "vetting": "in_progress", "interviewers": {"sup-1"}}, "sup",
     "vetting", "rejected", {}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("guard", "state", "by", "process", "to", "choices"),
    GUARD_CASES,
    ids=[f"{c[0]}-{c[4]}" for c in GUARD_CASES],
)
def test_each_guard_refuses_with_its_message(
    wf: Workflow,
    guard: str,
    state: dict[str, Any],
    by: str,
    process: str,
    to: str,
    choices: dict[str, str],
) -> None:
    ref = wf.register()
    state = dict(state)
    external = state.pop("external", "vetted")
    interviewers = state.pop("interviewers", None)
    if external == "vetted":
        wf.vetted(ref, **({"vetting_interviewers": interviewers} if interviewers else {}))
        wf.consent_to(ref)
    wf.set_state(ref, **state)
    before = wf.etag(ref)
    response = wf.move(by, ref, process, to, **choices)
    assert response.status_code == 409, response.get_json()
    problem = response.get_json()
    assert problem["type"] == INVALID
    assert guard in problem["unmet_guards"]
    assert GUARDS[guard].message in problem["detail"]
    assert isinstance(problem["allowed_transitions"], list)
    assert wf.etag(ref) == before


# --- the way through, four-eyes included ---------------------------------------------------


def _to_determination(wf: Workflow, ref: str) -> None:
    wf.ok("cw", ref, "case_stage", "vetting")
    wf.ok("vo", ref, "vetting", "in_progress")
    wf.vetted(ref)
    refused = wf.move("vo", ref, "vetting", "cleared")
    assert refused.status_code == 403  # a vetting officer does not decide
    wf.ok("sup", ref, "vetting", "cleared")
    wf.ok("cw", ref, "case_stage", "determination")


def _recognised(wf: Workflow, ref: str) -> None:
    _to_determination(wf, ref)
    for to in ("interview_scheduled", "interviewed", "assessment_drafted"):
        wf.ok("cw", ref, "determination", to)
    wf.ok("sup", ref, "determination", "supervisor_review")  # sup also wrote (submitted) it
    row = wf.row(ref)
    assert row is not None
    assert row.assessment_authors == ["cw-1"]
    wf.ok("sup", ref, "determination", "decided", outcome="recognized")
    wf.ok("cw", ref, "determination", "notified")


def test_rsd_author_cannot_decide_and_appeal_needs_a_third_person(wf: Workflow) -> None:
    ref = wf.register()
    _to_determination(wf, ref)
    wf.ok("cw", ref, "determination", "interview_scheduled")
    wf.ok("cw", ref, "determination", "interviewed")
    wf.ok("sup", ref, "determination", "assessment_drafted")  # sup-1 is the author
    wf.ok("sup", ref, "determination", "supervisor_review")
    own = wf.move("sup", ref, "determination", "decided", outcome="rejected")
    assert own.status_code == 409
    assert own.get_json()["unmet_guards"] == ["not_assessment_author"]
    wf.ok("sup2", ref, "determination", "decided", outcome="rejected")
    wf.ok("cw", ref, "determination", "notified")
    wf.ok("cw", ref, "determination", "appeal_lodged")
    for by in ("sup", "sup2"):
        refused = wf.move(by, ref, "determination", "appeal_decided", outcome="overturned")
        assert refused.status_code == 409
    row = wf.row(ref)
    assert row is not None
    assert (row.first_instance_decided_by, row.first_instance_outcome) == ("sup-2", "rejected")


def test_resettlement_submission_through_review_to_submitted(
    db_session: Session, wf: Workflow
) -> None:
    ref = wf.register()
    _recognised(wf, ref)
    wf.ok("cw", ref, "case_stage", "resettlement")
    for to in ("identified", "needs_assessment", "interview", "rrf_preparation"):
        wf.ok("cw", ref, "resettlement", to)
    saved = wf.put("sup", ref, "resettlement/submission", SUBMISSION)
    assert saved.status_code == 200, saved.get_json()
    assert saved.get_json()["workflow"]["submission"] == SUBMISSION
    # No consent yet: review cannot start.
    early = wf.move("cw", ref, "resettlement", "submission_review")
    assert early.get_json()["unmet_guards"] == ["resettlement_consent"]
    wf.consent_to(ref)
    wf.ok("cw", ref, "resettlement", "submission_review")
    # sup-1 drafted the submission: they cannot recommend it; sup-2 can.
    preparer = wf.move("sup", ref, "resettlement", "submitted")
    assert preparer.get_json()["unmet_guards"] == ["not_rrf_preparer"]
    done = wf.ok("sup2", ref, "resettlement", "submitted")
    assert done["workflow"]["states"]["resettlement"] == "submitted"
    assert wf.read("cw", ref)["resettlement_stage"] == "submitted"
    locked = wf.put("cw", ref, "resettlement/submission", {"priority": "normal"})
    assert locked.status_code == 409
    assert locked.get_json()["type"] == "urn:casework:problem:submission-locked"
    decided = wf.ok("cw", ref, "resettlement", "state_decision", decision="denied")
    assert decided["workflow"]["state_decision"] == "denied"
    wf.ok("cw", ref, "resettlement", "rrf_preparation")  # resubmission after a denial
    entries = [e.action for e in audit_entries(db_session, ref)]
    assert "case.update" in entries


def test_recognised_status_and_screening_gate_the_resettlement_stage(wf: Workflow) -> None:
    ref = wf.register()
    _recognised(wf, ref)
    wf.vetted(ref, security_screening="flagged")
    flagged = wf.move("cw", ref, "case_stage", "resettlement")
    assert flagged.get_json()["unmet_guards"] == ["screening_not_flagged"]


# --- submission and best-interests assessment ------------------------------------------


def test_submission_is_merged_validated_sealed_and_audited_by_name(
    db_session: Session, wf: Workflow
) -> None:
    ref = wf.register()
    assert wf.put("cw", ref, "resettlement/submission", {"priority": "normal"}).status_code == 409
    wf.set_state(ref, stage="resettlement", resettlement="rrf_preparation")
    bad = [
        {},
        {"categories": []},
        {"categories": ["medical_needs", "medical_needs"]},
        {"categories": ["medical_needs", "restoring_family_unity", "women_and_girls_at_risk"]},
        {"destination_country": "XXA"},
        {"priority": "soon"},
        {"priority": "normal", "note": "x"},
    ]
    for body in bad:
        assert wf.put("cw", ref, "resettlement/submission", body).status_code == 422, body
    first = wf.put("cw", ref, "resettlement/submission", {"destination_country": "SWE"})
    assert first.status_code == 200
    second = wf.put("cw2", ref, "resettlement/submission", {"priority": "emergency"})
    assert second.headers["ETag"] == wf.etag(ref)
    submission = second.get_json()["workflow"]["submission"]
    assert submission == {"destination_country": "SWE", "priority": "emergency", "categories": []}
    row = wf.row(ref)
    assert row is not None
    assert row.rrf_preparers == ["cw-1", "cw-2"]
    assert b"SWE" not in (row._submission_ciphertext or b"")  # type: ignore[attr-defined]
    updates = audit_entries(db_session, ref, "case.update")
    assert _fields(updates[-1]) == ["rrf_preparers", "submission.priority"]
    assert all("SWE" not in e.fields and "emergency" not in e.fields for e in updates)
    no_if_match = wf.client.put(
        f"{CASES}/{ref}/resettlement/submission", json={"priority": "normal"}, headers=who("cw")
    )
    assert no_if_match.status_code == 428


def test_best_interests_assessment_is_recorded_sealed_and_lifts_the_child_guard(
    db_session: Session, wf: Workflow
) -> None:
    ref = wf.register()
    wf.vetted(ref)
    wf.consent_to(ref)
    wf.set_state(
        ref,
        stage="resettlement",
        resettlement="rrf_preparation",
        vetting="cleared",
        needs=["SC-UC"],
        submission=SUBMISSION,
    )
    blocked = wf.move("cw", ref, "resettlement", "submission_review")
    assert blocked.get_json()["unmet_guards"] == ["best_interests_assessed"]
    future = wf.put("cw", ref, "best-interests-assessment", {"completed_on": "2999-01-01"})
    assert future.status_code == 422
    note = "Sentinel-BIA-note: placed with aunt"
    saved = wf.put(
        "cw", ref, "best-interests-assessment", {"completed_on": "2025-02-03", "note": note}
    )
    assert saved.status_code == 200
    assessment = saved.get_json()["workflow"]["best_interests_assessment"]
    assert assessment == {"completed": True, "completed_on": "2025-02-03", "note": note}
    row = wf.row(ref)
    assert row is not None
    assert b"Sentinel" not in (row._best_interests_note_ciphertext or b"")  # type: ignore[attr-defined]
    (entry,) = audit_entries(db_session, ref, "case.update")
    assert "Sentinel" not in entry.fields
    wf.ok("cw", ref, "resettlement", "submission_review")


# --- closure and reopening ---------------------------------------------------------------


def test_close_and_reopen_with_reasons_audited_as_close_and_reopen(
    client: FlaskClient, db_session: Session, wf: Workflow
) -> None:
    ref = wf.register()
    wf.ok("cw", ref, "case_stage", "vetting")
    closed = wf.ok("sup", ref, "case_stage", "closed", reason="lost_contact")
    assert closed["workflow"]["closure_reason"] == "lost_contact"
    assert closed["workflow"]["last_active_stage"] == "vetting"
    assert {(t["process"], t["to"]) for t in closed["allowed_transitions"]} == {
        ("case_stage", "intake"),
        ("case_stage", "vetting"),
    }
    (close,) = audit_entries(db_session, ref, "case.close")
    assert _fields(close) == ["closure_reason", "last_active_stage", "stage"]
    assert "lost_contact" not in close.fields
    assert wf.move("cw", ref, "case_stage", "vetting", reason="resumed_contact").status_code == 403
    reopened = wf.ok("sup", ref, "case_stage", "vetting", reason="resumed_contact")
    assert reopened["workflow"]["reopen_reason"] == "resumed_contact"
    assert reopened["workflow"]["last_active_stage"] is None
    (reopen,) = audit_entries(db_session, ref, "case.reopen")
    assert _fields(reopen) == ["last_active_stage", "reopen_reason", "stage"]
    history = client.get(f"{CASES}/{ref}/history", headers=who("cw")).get_json()["items"]
    assert [i["action"] for i in history][-2:] == ["case.close", "case.reopen"]


def test_rsd_file_closes_and_reopens_with_reasons(wf: Workflow) -> None:
    ref = wf.register()
    _to_determination(wf, ref)
    wf.ok("sup", ref, "determination", "closed", reason="withdrawn")
    assert wf.move("cw", ref, "determination", "reopened", reason="other").status_code == 403
    wf.ok("sup", ref, "determination", "reopened", reason="new_information")
    row = wf.row(ref)
    assert row is not None
    assert row.reasons == {
        "determination.close": "withdrawn",
        "determination.reopen": "new_information",
    }
    assert wf.case(ref).stage == "determination"


# --- the case read --------------------------------------------------------------------------


def test_case_read_shows_workflow_and_allowed_transitions_by_role_and_state(
    db_session: Session, wf: Workflow
) -> None:
    ref = wf.register()
    read = wf.read("cw", ref)
    assert read["workflow"]["states"] == {
        "case_stage": "intake",
        "vetting": "not_started",
        "determination": "registered",
        "resettlement": "not_considered",
        "handoff": "none",
    }
    assert wf.allowed("cw", ref) == {("case_stage", "vetting")}
    assert wf.allowed("sup", ref) == {("case_stage", "vetting"), ("case_stage", "closed")}
    close = next(t for t in read["allowed_transitions"] if t["to"] == "vetting")
    assert close["name"] == "start_vetting"
    assert close["choice"] is None
    wf.ok("cw", ref, "case_stage", "vetting")
    assert wf.allowed("cw", ref) == set()
    assert ("vetting", "in_progress") in wf.allowed("vo", ref)
    assert ("vetting", "in_progress") in wf.allowed("sup", ref)
    wf.ok("vo", ref, "vetting", "in_progress")
    wf.vetted(ref)
    assert ("vetting", "cleared") in wf.allowed("sup", ref)
    wf.vetted(ref, vetting_interviewers=frozenset({"sup-1"}))
    assert ("vetting", "cleared") not in wf.allowed("sup", ref)
    reads = audit_entries(db_session, ref, "case.read")
    assert "workflow.states" in _fields(reads[-1])
    assert "workflow.best_interests_assessment" not in _fields(reads[-1])


def test_case_read_shows_sealed_details_only_to_permitted_roles(
    wf: Workflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    from casework.authz import permissions

    ref = wf.register()
    wf.set_state(ref, stage="resettlement", resettlement="rrf_preparation", submission=SUBMISSION)
    assert wf.read("cw", ref)["workflow"]["submission"] == SUBMISSION
    narrow = permissions.ROLE_PERMISSIONS["caseworker"] - {
        permissions.Permission.RESETTLEMENT_PREPARE,
        permissions.Permission.DETERMINATION_ASSESS,
    }
    monkeypatch.setitem(permissions.ROLE_PERMISSIONS, "caseworker", narrow)
    workflow = wf.read("cw", ref)["workflow"]
    assert "submission" not in workflow
    assert "first_instance_outcome" not in workflow
    assert "best_interests_assessment" in workflow


def test_intake_writes_no_workflow_row(db_session: Session, wf: Workflow) -> None:
    ref = wf.register()
    wf.read("cw", ref)
    assert wf.row(ref) is None
    rows = db_session.scalars(select(CaseWorkflow)).all()
    assert all(r.case_id != wf.case(ref).id for r in rows)


# --- the registry: real fact sources, scope extensions ------------------------------------


def test_with_the_registered_sources_pending_vetting_keeps_submitted_unreachable(
    app: Any, client: FlaskClient, db_session: Session, offices: Any
) -> None:
    from casework.security.app import holder
    from casework.security.case_keys import attach_keyring
    from tests.workflow.conftest import ExternalFacts

    attach_keyring(db_session, holder(app).get())
    real = Workflow(app, client, db_session, ExternalFacts())  # the features' own sources
    ref = real.register()
    real.set_state(
        ref,
        stage="resettlement",
        resettlement="submission_review",
        vetting="cleared",
        submission=SUBMISSION,
        rrf_preparers=["cw-1"],
    )
    assert ("resettlement", "submitted") not in real.allowed("sup", ref)
    refused = real.move("sup", ref, "resettlement", "submitted")
    assert refused.status_code == 409
    unmet = refused.get_json()["unmet_guards"]
    assert {"screening_cleared", "medical_examination_completed"} <= set(unmet)


def test_a_scope_extension_lets_another_office_reach_the_engine(
    wf: Workflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    from casework.workflow import facts

    ref = wf.register()
    assert wf.move("outsider", ref, "case_stage", "vetting").status_code == 404

    def reach(session: Session, principal: Any, reference: str) -> Any:
        return wf.case(reference) if principal.user_id == "sup-b" else None

    monkeypatch.setattr(facts.hooks(wf.app), "scope_extensions", [reach])
    # Reached, but owning-office rows still need the owning office.
    refused = wf.move("outsider", ref, "case_stage", "vetting")
    assert refused.status_code == 409
    assert refused.get_json()["unmet_guards"] == ["actor_in_owning_office"]
    assert wf.move("cw", ref, "case_stage", "vetting").status_code == 200
