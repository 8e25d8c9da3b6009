"""The vetting decision end to end, through ``POST /cases/{reference}/transitions``:
four-eyes against interviewers and referrer, complete checks, reviewed alerts; and a
rejected or flagged case never reaches resettlement."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from casework.cases.codes import Stage
from casework.cases.models import Case
from tests.cases.conftest import CASES, household, member, unique
from tests.conftest import principal_headers
from tests.vetting.conftest import checks_url, interviews_url, to_stage

CLEAN = {
    "identity_verification": {"status": "verified"},
    "security_screening": {"status": "cleared"},
    "medical_examination": {"status": "completed", "fit_to_travel": True},
    "credibility_assessment": {"status": "credible"},
}


class Flow:
    """One case driven through the API, keeping its ETag."""

    def __init__(self, client: FlaskClient, reference: str, etag: str) -> None:
        self.client = client
        self.reference = reference
        self.etag = etag

    def _after(self, response: Any) -> Any:
        if response.status_code < 300:
            self.etag = response.headers["ETag"]
        return response

    def move(self, headers: dict[str, str], process: str, to: str) -> Any:
        return self._after(
            self.client.post(
                f"{CASES}/{self.reference}/transitions",
                json={"process": process, "to": to},
                headers={**headers, "If-Match": self.etag},
            )
        )

    def check(self, headers: dict[str, str], check: str, body: dict[str, Any]) -> Any:
        response = self._after(
            self.client.put(
                checks_url(self.reference, check),
                json=body,
                headers={**headers, "If-Match": self.etag},
            )
        )
        assert response.status_code == 200, response.get_json()
        return response

    def interview(self, headers: dict[str, str], members: list[str]) -> Any:
        response = self._after(
            self.client.post(
                interviews_url(self.reference),
                json={"members": members, "conducted_on": date.today().isoformat()},
                headers=headers,
            )
        )
        assert response.status_code == 201, response.get_json()
        return response


def unmet(response: Any) -> list[str]:
    assert response.status_code == 409, response.get_json()
    body = response.get_json()
    assert body["type"] == "urn:casework:problem:invalid-transition"
    guards: list[str] = body["unmet_guards"]
    return guards


@pytest.fixture
def flow(
    client: FlaskClient,
    register: Any,
    worker_a: dict[str, str],
    officer_a: dict[str, str],
) -> Any:
    """A case of office A moved into vetting (open), with one interview by officer A."""

    def start(
        body: dict[str, Any] | None = None, *, interviewer: dict[str, str] = officer_a
    ) -> Flow:
        case = register(worker_a, body)
        flow = Flow(client, case["reference"], '"v1"')
        assert flow.move(worker_a, "case_stage", "vetting").status_code == 200
        assert flow.move(officer_a, "vetting", "in_progress").status_code == 200
        flow.interview(interviewer, [m["id"] for m in case["members"]])
        return flow

    return start


def complete(flow: Flow, headers: dict[str, str], **overrides: dict[str, Any]) -> None:
    for check, body in {**CLEAN, **overrides}.items():
        flow.check(headers, check, body)


def test_an_interviewer_may_not_decide_another_supervisor_may(
    flow: Any, office_a: str, officer_a: dict[str, str]
) -> None:
    interviewing = principal_headers("supervisor", office_a, "supervisor-interviewer")
    case = flow(interviewer=interviewing)
    complete(case, officer_a)
    assert "not_vetting_interviewer" in unmet(case.move(interviewing, "vetting", "cleared"))
    deciding = principal_headers("supervisor", office_a, "supervisor-decider")
    cleared = case.move(deciding, "vetting", "cleared")
    assert cleared.status_code == 200, cleared.get_json()
    assert cleared.get_json()["workflow"]["states"]["vetting"] == "cleared"


def test_whoever_recorded_an_interview_may_not_decide(
    client: FlaskClient, flow: Any, office_a: str, officer_a: dict[str, str]
) -> None:
    recorder = principal_headers("supervisor", office_a, "supervisor-recorder")
    case = flow()
    members = client.get(f"{CASES}/{case.reference}", headers=officer_a).get_json()["members"]
    scheduled = client.post(
        interviews_url(case.reference),
        json={"members": [members[0]["id"]], "scheduled_for": "2030-01-01T09:00:00+00:00"},
        headers=officer_a,
    )
    recorded = client.patch(
        f"{interviews_url(case.reference)}/{scheduled.get_json()['id']}",
        json={"conducted_on": date.today().isoformat()},
        headers={**recorder, "If-Match": scheduled.headers["ETag"]},
    )
    assert recorded.status_code == 200
    case.etag = recorded.headers["ETag"]
    complete(case, officer_a)
    assert "not_vetting_interviewer" in unmet(case.move(recorder, "vetting", "cleared"))


def test_a_referral_needs_a_second_decider(
    flow: Any, office_a: str, officer_a: dict[str, str]
) -> None:
    case = flow()
    complete(case, officer_a)
    first = principal_headers("supervisor", office_a, "supervisor-first")
    second = principal_headers("supervisor", office_a, "supervisor-second")
    assert case.move(first, "vetting", "referred_for_review").status_code == 200
    assert "not_vetting_referrer" in unmet(case.move(first, "vetting", "cleared"))
    assert case.move(second, "vetting", "cleared").status_code == 200


def test_no_decision_before_every_check_is_complete(
    flow: Any, supervisor_a: dict[str, str], officer_a: dict[str, str]
) -> None:
    case = flow()
    for check, body in list(CLEAN.items())[:3]:
        case.check(officer_a, check, body)
    for target in ("cleared", "referred_for_review", "rejected"):
        assert "vetting_checks_complete" in unmet(case.move(supervisor_a, "vetting", target))


def test_no_decision_without_a_recorded_interview(
    client: FlaskClient,
    register: Any,
    worker_a: dict[str, str],
    officer_a: dict[str, str],
    supervisor_a: dict[str, str],
) -> None:
    case = register(worker_a)
    flow = Flow(client, case["reference"], '"v1"')
    flow.move(worker_a, "case_stage", "vetting")
    flow.move(officer_a, "vetting", "in_progress")
    complete(flow, officer_a)
    assert "vetting_interview_recorded" in unmet(flow.move(supervisor_a, "vetting", "cleared"))


def test_no_decision_while_a_duplicate_alert_is_open(
    client: FlaskClient,
    db_session: Session,
    office_a: str,
    register: Any,
    flow: Any,
    worker_b: dict[str, str],
    officer_a: dict[str, str],
    supervisor_a: dict[str, str],
) -> None:
    number = unique("DEC")
    documents = [{"type": "passport", "number": number}]
    other = register(worker_b, household(member(documents=documents)))
    case = flow(household(member(documents=documents, full_name="Not The Same Name")))
    integrity = {"X-Test-Principal": "integrity_officer;;integrity-1"}
    client.get("/api/v1/alerts", headers=integrity)  # the cross-office scan raises the alert
    # Office B hands its case to office A: the alert is now office A's to review.
    db_session.execute(
        update(Case).where(Case.reference == other["reference"]).values(office_code=office_a)
    )
    complete(case, officer_a, identity_verification={"status": "not_verified"})
    assert "duplicate_alerts_reviewed" in unmet(case.move(supervisor_a, "vetting", "rejected"))
    (alert,) = client.get("/api/v1/alerts", headers=officer_a).get_json()["items"]
    review = client.post(
        f"/api/v1/alerts/{alert['id']}/review",
        json={"outcome": "suspected_impostor"},
        headers={**officer_a, "If-Match": f'"v{alert["version"]}"'},
    )
    assert review.status_code == 201
    case.etag = client.get(checks_url(case.reference), headers=officer_a).headers["ETag"]
    assert case.move(supervisor_a, "vetting", "rejected").status_code == 200


def test_a_decided_vetting_is_frozen_until_reopened(
    flow: Any, officer_a: dict[str, str], supervisor_a: dict[str, str]
) -> None:
    case = flow()
    complete(case, officer_a)
    assert case.move(supervisor_a, "vetting", "cleared").status_code == 200
    frozen = case.client.put(
        checks_url(case.reference, "security_screening"),
        json={"status": "flagged"},
        headers={**officer_a, "If-Match": case.etag},
    )
    assert frozen.status_code == 409
    assert frozen.get_json()["type"] == "urn:casework:problem:vetting-decided"
    assert case.move(supervisor_a, "vetting", "in_progress").status_code == 200  # reopen
    case.check(officer_a, "security_screening", {"status": "flagged"})
    assert "screening_cleared" in unmet(case.move(supervisor_a, "vetting", "cleared"))


def test_a_flagged_case_is_not_cleared_and_a_rejected_one_goes_no_further(
    flow: Any,
    db_session: Session,
    officer_a: dict[str, str],
    supervisor_a: dict[str, str],
    worker_a: dict[str, str],
) -> None:
    case = flow()
    complete(case, officer_a, security_screening={"status": "flagged"})
    assert "screening_cleared" in unmet(case.move(supervisor_a, "vetting", "cleared"))
    assert case.move(supervisor_a, "vetting", "rejected").status_code == 200
    assert "vetting_cleared" in unmet(case.move(worker_a, "case_stage", "determination"))
    # Even a case put at determination by other means cannot be referred to resettlement.
    to_stage(db_session, case.reference, Stage.DETERMINATION)
    guards = unmet(case.move(worker_a, "case_stage", "resettlement"))
    assert {"vetting_cleared", "screening_not_flagged"} <= set(guards)
