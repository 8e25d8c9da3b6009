"""The vetting facts the workflow reads: statuses, interviewers, open duplicate alerts."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.cases.models import Case
from casework.vetting import service
from casework.workflow import facts as registry
from casework.workflow.codes import (
    CredibilityAssessment,
    IdentityVerification,
    MedicalExamination,
    SecurityScreening,
)
from casework.workflow.guards import CaseFacts
from tests.vetting.conftest import checks_url, interviews_url

VETTING_FACTS = {
    "identity_verification",
    "security_screening",
    "medical_examination",
    "fit_to_travel",
    "credibility_assessment",
    "vetting_interviewers",
    "open_duplicate_alerts",
}


def load(session: Session, reference: str) -> Case:
    return session.scalars(select(Case).where(Case.reference == reference)).one()


def test_the_source_is_registered_and_provides_exactly_its_fields(
    app: Flask, keyed_session: Session, vetting_case: Any
) -> None:
    case = load(keyed_session, vetting_case()["reference"])
    assert service.vetting_facts in registry.hooks(app).sources
    values = service.vetting_facts(keyed_session, case)
    assert set(values) == VETTING_FACTS
    with app.app_context():
        assert set(registry.gather(keyed_session, case)) >= VETTING_FACTS
    assert values == {
        "identity_verification": IdentityVerification.PENDING,
        "security_screening": SecurityScreening.PENDING,
        "medical_examination": MedicalExamination.PENDING,
        "fit_to_travel": None,
        "credibility_assessment": CredibilityAssessment.PENDING,
        "vetting_interviewers": frozenset(),
        "open_duplicate_alerts": 0,
    }
    CaseFacts(office=case.office_code, now=datetime.now(UTC), **values)  # a valid snapshot


def test_the_source_follows_what_was_recorded(
    client: FlaskClient,
    keyed_session: Session,
    vetting_case: Any,
    officer_a: dict[str, str],
    officer_a2: dict[str, str],
    supervisor_a: dict[str, str],
) -> None:
    created = vetting_case()
    reference = created["reference"]
    member_ids = [m["id"] for m in created["members"]]
    url = interviews_url(reference)
    # Scheduled only: nobody has conducted an interview yet.
    scheduled = client.post(
        url, json={"members": member_ids, "scheduled_for": "2030-01-01T09:00:00+00:00"},
        headers=supervisor_a,
    )  # fmt: skip
    assert (
        service.vetting_facts(keyed_session, load(keyed_session, reference))["vetting_interviewers"]
        == frozenset()
    )
    # Recorded by officer-a2 for supervisor-a: both are the first pair of eyes.
    client.patch(
        f"{url}/{scheduled.get_json()['id']}",
        json={"conducted_on": date.today().isoformat()},
        headers={**officer_a2, "If-Match": scheduled.headers["ETag"]},
    )
    version = 3
    for check, body in {
        "identity_verification": {"status": "verified"},
        "security_screening": {"status": "flagged"},
        "medical_examination": {"status": "completed", "fit_to_travel": False},
        "credibility_assessment": {"status": "not_credible"},
    }.items():
        answer = client.put(
            checks_url(reference, check), json=body,
            headers={**officer_a, "If-Match": f'"v{version}"'},
        )  # fmt: skip
        assert answer.status_code == 200, answer.get_json()
        version += 1
    keyed_session.expire_all()
    values = service.vetting_facts(keyed_session, load(keyed_session, reference))
    assert values == {
        "identity_verification": IdentityVerification.VERIFIED,
        "security_screening": SecurityScreening.FLAGGED,
        "medical_examination": MedicalExamination.COMPLETED,
        "fit_to_travel": False,
        "credibility_assessment": CredibilityAssessment.NOT_CREDIBLE,
        "vetting_interviewers": frozenset({"supervisor-a", "officer-a2"}),
        "open_duplicate_alerts": 0,
    }
    # Back to pending: fitness to travel no longer counts.
    client.put(
        checks_url(reference, "medical_examination"), json={"status": "pending"},
        headers={**officer_a, "If-Match": f'"v{version}"'},
    )  # fmt: skip
    keyed_session.expire_all()
    values = service.vetting_facts(keyed_session, load(keyed_session, reference))
    assert values["medical_examination"] == MedicalExamination.PENDING
    assert values["fit_to_travel"] is None
