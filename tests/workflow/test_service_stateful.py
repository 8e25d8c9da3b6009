"""Random transitions by random staff of random roles and offices, through the service and
the database (the pure engine has its own machine in test_stateful.py).

Before each step the machine asks the engine, from the facts as stored, whether the step
is allowed; the service must agree, and must apply exactly that step. The invariants are
written from the issue's rules, not through the guard registry: the permission comes from
the role table, four-eyes from the stored authors and preparers, and ``submitted`` is only
reached with cleared screening and a completed medical examination at that moment. Vetting
facts and consent are set by the machine in place of the features that own them, and
begin ``pending``. An officer of another office never sees the case.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.authz.access import Principal
from casework.authz.permissions import ROLE_PERMISSIONS
from casework.cases.models import Case
from casework.cases.service import bulk_intake
from casework.errors import ValidationFailed
from casework.workflow import engine, service
from casework.workflow.engine import InvalidTransition, TransitionForbidden
from casework.workflow.guards import Actor
from casework.workflow.machines import TABLES, Process, Transition, transitions_from
from casework.workflow.models import CaseWorkflow
from casework.workflow.service import SubmissionLocked
from tests.cases.conftest import CASES, household
from tests.conftest import principal_headers
from tests.workflow.conftest import OFFICE, OTHER, SUBMISSION, VETTED, ExternalFacts
from tests.workflow.helpers import consent

STAFF = (
    ("supervisor", OFFICE, "sup-1"),
    ("supervisor", OFFICE, "sup-2"),
    ("supervisor", OFFICE, "sup-3"),
    ("vetting_officer", OFFICE, "vo-1"),
    ("caseworker", OFFICE, "cw-1"),
    ("caseworker", OFFICE, "cw-2"),
    ("supervisor", OTHER, "sup-b"),
    ("caseworker", OTHER, "cw-b"),
    ("admin", None, "admin-1"),
)
CHECKS = {
    "identity_verification": ("pending", "verified", "not_verified"),
    "security_screening": ("pending", "cleared", "flagged"),
    "medical_examination": ("pending", "completed"),
    "credibility_assessment": ("pending", "credible", "not_credible"),
}
_RECOGNISED = {
    "vetting": "cleared",
    "determination": "notified",
    "first_instance_outcome": "recognized",
    "assessment_authors": ["cw-1"],
    "first_instance_decided_by": "sup-2",
}
# Where a run's case starts: stage, resettlement stage, workflow row values.
STARTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "intake": ("intake", "not_considered", {}),
    "determination": ("determination", "not_considered", {"vetting": "cleared"}),
    "resettlement": (
        "resettlement",
        "rrf_preparation",
        {**_RECOGNISED, "submission": SUBMISSION, "rrf_preparers": ["cw-1"]},
    ),
    "review": (
        "resettlement",
        "submission_review",
        {**_RECOGNISED, "submission": SUBMISSION, "rrf_preparers": ["cw-1", "sup-1"]},
    ),
}
VETTING_DECISIONS = ("cleared", "referred_for_review", "rejected")


class ServiceMachine(RuleBasedStateMachine):
    def __init__(
        self, app: Flask, client: FlaskClient, session: Session, external: ExternalFacts
    ) -> None:
        super().__init__()
        self.app, self.client, self.session, self.external = app, client, session, external
        self.reference = ""

    @initialize(start=st.sampled_from(sorted(STARTS)), data=st.data())
    def new_case(self, start: str, data: st.DataObject) -> None:
        """A new case, at intake or (to reach deep states within a run) further on."""
        (case,) = bulk_intake(self.session, OFFICE, [household()])
        self.reference = case.reference
        stage, resettlement, values = STARTS[start]
        case.stage, case.resettlement_stage = stage, resettlement
        if values:
            self.session.add(CaseWorkflow(case_id=case.id, **values))
            # The facts a case at this point has; record_check may spoil them later.
            self.external.set(case.id, **VETTED)
            self.give_consent("CAN")
        self.session.flush()

    def case(self) -> Case:
        query = select(Case).where(Case.reference == self.reference)
        found: Case = self.session.scalars(query.execution_options(populate_existing=True)).one()
        return found

    # --- facts owned by other features ----------------------------------------------

    @rule(check=st.sampled_from(sorted(CHECKS)), data=st.data())
    def record_check(self, check: str, data: st.DataObject) -> None:
        status = data.draw(st.sampled_from(CHECKS[check]))
        values: dict[str, Any] = {check: status}
        if check == "medical_examination":
            values["fit_to_travel"] = True if status == "completed" else None
        self.external.set(self.case().id, **values)

    @rule(who=st.sampled_from(STAFF))
    def record_interview(self, who: tuple[str, str | None, str]) -> None:
        case_id = self.case().id
        current = self.external.by_case.get(case_id, {}).get("vetting_interviewers", frozenset())
        self.external.set(case_id, vetting_interviewers=current | {who[2]})

    @rule(destination=st.sampled_from(["CAN", "SWE"]))
    def give_consent(self, destination: str) -> None:
        now = datetime.now(UTC)
        record = consent(
            recipient=destination,
            given_at=now - timedelta(days=1),
            expires_at=now + timedelta(days=30),
        )
        self.external.set(self.case().id, consents=(record,))

    # --- writes of this feature -----------------------------------------------------

    @rule(who=st.sampled_from(STAFF), body=st.sampled_from([SUBMISSION, {"priority": "normal"}]))
    def draft_submission(self, who: tuple[str, str | None, str], body: dict[str, Any]) -> None:
        role, office, user = who
        if office != OFFICE or "resettlement:prepare" not in ROLE_PERMISSIONS[role]:
            return  # the route refuses them before the service
        case = self.case()
        editable = case.stage == "resettlement" and case.resettlement_stage in {
            "identified",
            "needs_assessment",
            "interview",
            "rrf_preparation",
        }
        nested = self.session.begin_nested()
        try:
            service.save_submission(self.session, self._principal(who), case, body)
        except SubmissionLocked:
            nested.rollback()
            assert not editable
            return
        nested.commit()
        assert editable
        assert user in (service.build_facts(self.session, self.case()).rrf_preparers)

    # --- transitions ----------------------------------------------------------------

    def _principal(self, who: tuple[str, str | None, str]) -> Principal:
        role, office, user = who
        return Principal.for_role(role, user_id=user, office=office)

    def _pick(self, data: st.DataObject, actor: Actor, process: Process, state: str) -> Transition:
        facts = service.build_facts(self.session, self.case())
        allowed = engine.allowed_for_case(facts, actor)
        if allowed and data.draw(st.booleans(), label="take an allowed one"):
            return data.draw(st.sampled_from(allowed))
        leaving = transitions_from(process, state) or TABLES[process]
        return data.draw(st.sampled_from(leaving))

    @rule(data=st.data())
    def progress(self, data: st.DataObject) -> None:
        """Someone takes a step the engine allows them (so runs get somewhere)."""
        facts = service.build_facts(self.session, self.case())
        options = [
            (who, t)
            for who in STAFF
            for t in engine.allowed_for_case(facts, Actor.from_principal(self._principal(who)))
        ]
        if not data.draw(st.integers(0, 9), label="may close"):
            options = [(w, t) for w, t in options if t.to_state != "closed"]  # runs end early
        if options:
            # One transition first, then who takes it: steps many may take do not crowd out others.
            row = data.draw(st.sampled_from(list(dict.fromkeys(t for _, t in options))))
            who = data.draw(st.sampled_from([w for w, t in options if t == row]))
            self._attempt(who, row, data)

    @rule(data=st.data())
    def progress_again(self, data: st.DataObject) -> None:
        """A second rule for progress: hypothesis picks rules evenly, and most are not steps."""
        self.progress(data)

    @rule(who=st.sampled_from(STAFF), process=st.sampled_from(list(Process)), data=st.data())
    def transition(
        self, who: tuple[str, str | None, str], process: Process, data: st.DataObject
    ) -> None:
        actor = Actor.from_principal(self._principal(who))
        state = service.build_facts(self.session, self.case()).state_of(process)
        self._attempt(who, self._pick(data, actor, process, state), data)

    def _attempt(self, who: tuple[str, str | None, str], row: Transition, data: Any) -> None:
        principal = self._principal(who)
        actor = Actor.from_principal(principal)
        before = service.build_facts(self.session, self.case())
        process = row.process
        choices = {}
        if row.choice is not None:
            choices[row.choice.field] = data.draw(st.sampled_from(row.choice.values))
        expected = row.from_state == before.state_of(process) and row in (
            engine.allowed_transitions(process, row.from_state, before, actor)
        )
        version = self.case().version
        request = {"process": process, "to": row.to_state, **choices}
        nested = self.session.begin_nested()
        try:
            result = service.transition(self.session, principal, self.case(), request)
        except (InvalidTransition, TransitionForbidden, ValidationFailed):
            nested.rollback()
            assert not expected, (row.name, who)
            assert self.case().version == version
            return
        nested.commit()
        event(f"took {process.value} -> {row.to_state}")
        assert expected, (row.name, who)
        after = service.build_facts(self.session, self.case())
        assert after.state_of(process) == row.to_state
        assert result["version"] == version + 1 == self.case().version
        self._check_rules(row, who, before)

    def _check_rules(self, row: Transition, who: tuple[str, str | None, str], before: Any) -> None:
        role, office, user = who
        assert row.permission in ROLE_PERMISSIONS[role]
        assert office == before.office  # only the owning office moves its cases
        vetting_decision = row.process is Process.VETTING and row.to_state in VETTING_DECISIONS
        if vetting_decision:
            assert user not in before.vetting_interviewers
        if vetting_decision and row.from_state == "referred_for_review":
            assert user != before.vetting_referred_by
        if row.process is Process.DETERMINATION and row.to_state == "decided":
            assert user not in before.assessment_authors
        if row.process is Process.DETERMINATION and row.to_state == "appeal_decided":
            assert user not in before.assessment_authors
            assert user != before.first_instance_decided_by
        if row.process is Process.RESETTLEMENT and row.from_state == "submission_review":
            assert user not in before.rrf_preparers
        if row.process is Process.RESETTLEMENT and row.to_state == "submitted":
            assert before.security_screening == "cleared"
            assert before.medical_examination == "completed"

    @rule()
    def outsider_sees_nothing(self) -> None:
        headers = principal_headers("supervisor", OTHER, "sup-b")
        url = f"{CASES}/{self.reference}"
        assert self.client.get(url, headers=headers).status_code == 404
        body = {"process": "case_stage", "to": "closed", "reason": "other"}
        moved = self.client.post(
            f"{url}/transitions", json=body, headers={**headers, "If-Match": '"v1"'}
        )
        assert moved.status_code == 404


def test_random_transitions_by_random_staff(
    app: Flask,
    client: FlaskClient,
    db_session: Session,
    offices: tuple[str, str],
    external: ExternalFacts,
) -> None:
    from casework.security.app import holder
    from casework.security.case_keys import attach_keyring

    attach_keyring(db_session, holder(app).get())
    with app.app_context():
        run_state_machine_as_test(
            lambda: ServiceMachine(app, client, db_session, external),
            settings=settings(
                max_examples=50,
                stateful_step_count=30,
                deadline=None,
                derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            ),
        )
