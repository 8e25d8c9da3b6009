"""Fixtures of the workflow API and service tests: staff of two offices, cases, and facts
that other features own (vetting checks, consent) set by the test instead of their APIs."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.cases.models import Case
from casework.security.app import holder
from casework.security.case_keys import attach_keyring
from casework.workflow import facts
from casework.workflow.models import CaseWorkflow
from tests.cases.conftest import CASES, household
from tests.conftest import principal_headers
from tests.workflow.helpers import consent

OFFICE, OTHER = "amm-01", "irb-02"
STAFF = {
    "cw": ("caseworker", OFFICE, "cw-1"),
    "cw2": ("caseworker", OFFICE, "cw-2"),
    "vo": ("vetting_officer", OFFICE, "vo-1"),
    "sup": ("supervisor", OFFICE, "sup-1"),
    "sup2": ("supervisor", OFFICE, "sup-2"),
    "outsider": ("supervisor", OTHER, "sup-b"),
    "admin": ("admin", None, "admin-1"),
    "auditor": ("auditor", None, "auditor-1"),
}
# What the vetting feature reports for a case whose checks are all done (interviewer vo-1).
VETTED: Mapping[str, Any] = {
    "identity_verification": "verified",
    "security_screening": "cleared",
    "medical_examination": "completed",
    "fit_to_travel": True,
    "credibility_assessment": "credible",
    "vetting_interviewers": frozenset({"vo-1"}),
}
SUBMISSION = {
    "destination_country": "CAN",
    "priority": "urgent",
    "categories": ["legal_physical_protection_needs", "medical_needs"],
}


def who(name: str) -> dict[str, str]:
    role, office, user = STAFF[name]
    return principal_headers(role, office, user)


@dataclass
class ExternalFacts:
    """Stands in for every registered fact source: CaseFacts fields by case id."""

    by_case: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)

    def source(self, session: Session, case: Case) -> dict[str, Any]:
        return dict(self.by_case.get(case.id, {}))

    def set(self, case_id: uuid.UUID, **values: Any) -> None:
        self.by_case.setdefault(case_id, {}).update(values)


@pytest.fixture
def external(app: Flask, monkeypatch: pytest.MonkeyPatch) -> ExternalFacts:
    """Replace the fact sources of other features by facts the test sets."""
    stand_in = ExternalFacts()
    hooks = facts.hooks(app)
    monkeypatch.setattr(hooks, "sources", {stand_in.source: hooks.provided()})
    return stand_in


@dataclass
class Workflow:
    """Drives cases through the API as named staff, and sets states directly when a test
    is about one step rather than the way there."""

    app: Flask
    client: FlaskClient
    session: Session
    external: ExternalFacts

    def register(self, by: str = "cw", **fields: Any) -> str:
        response = self.client.post(CASES, json=household(**fields), headers=who(by))
        assert response.status_code == 201, response.get_json()
        reference: str = response.get_json()["reference"]
        return reference

    def case(self, reference: str) -> Case:
        query = select(Case).where(Case.reference == reference)
        found: Case = self.session.scalars(query.execution_options(populate_existing=True)).one()
        return found

    def row(self, reference: str) -> CaseWorkflow | None:
        return self.session.get(CaseWorkflow, self.case(reference).id, populate_existing=True)

    def etag(self, reference: str) -> str:
        version = self.session.scalar(select(Case.version).where(Case.reference == reference))
        return f'"v{version}"'

    def move(self, by: str, reference: str, process: str, to: str, **choices: str) -> Any:
        headers = {**who(by), "If-Match": self.etag(reference)}
        body = {"process": process, "to": to, **choices}
        return self.client.post(f"{CASES}/{reference}/transitions", json=body, headers=headers)

    def ok(self, by: str, reference: str, process: str, to: str, **choices: str) -> Any:
        response = self.move(by, reference, process, to, **choices)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def put(self, by: str, reference: str, path: str, body: Any) -> Any:
        headers = {**who(by), "If-Match": self.etag(reference)}
        return self.client.put(f"{CASES}/{reference}/{path}", json=body, headers=headers)

    def read(self, by: str, reference: str) -> Any:
        response = self.client.get(f"{CASES}/{reference}", headers=who(by))
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def allowed(self, by: str, reference: str) -> set[tuple[str, str]]:
        return {(t["process"], t["to"]) for t in self.read(by, reference)["allowed_transitions"]}

    def set_state(
        self,
        reference: str,
        *,
        stage: str | None = None,
        resettlement: str | None = None,
        needs: list[str] | None = None,
        **row_values: Any,
    ) -> None:
        """Put the case in a state directly (no audit, no version change)."""
        case = self.case(reference)
        if stage is not None:
            case.stage = stage
        if resettlement is not None:
            case.resettlement_stage = resettlement
        if needs is not None:
            case.specific_needs = needs
        row = self.row(reference)
        if row is None:
            row = CaseWorkflow(case_id=case.id)
            self.session.add(row)
        for name, value in row_values.items():
            setattr(row, name, value)
        self.session.flush()

    def vetted(self, reference: str, **changes: Any) -> None:
        self.external.set(self.case(reference).id, **{**VETTED, **changes})

    def consent_to(self, reference: str, destination: str = "CAN") -> None:
        from datetime import UTC, datetime, timedelta

        now = datetime.now(UTC)
        record = consent(
            recipient=destination,
            given_at=now - timedelta(days=1),
            expires_at=now + timedelta(days=30),
        )
        self.external.set(self.case(reference).id, consents=(record,))


@pytest.fixture
def offices(make_office: Any) -> tuple[str, str]:
    return make_office(OFFICE, "Amman"), make_office(OTHER, "Irbid", "JOR")


@pytest.fixture
def wf(
    app: Flask,
    client: FlaskClient,
    db_session: Session,
    offices: tuple[str, str],
    external: ExternalFacts,
) -> Workflow:
    attach_keyring(db_session, holder(app).get())  # to read sealed values back
    return Workflow(app, client, db_session, external)
