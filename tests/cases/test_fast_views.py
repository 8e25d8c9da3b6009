"""The hot reads (a case, a list page, a search) answer without a marshmallow dump: what
they send must be exactly what their response schema would dump, the schema staying the
documented contract."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.api import jsonable
from casework.authz.access import require_principal
from casework.authz.permissions import Permission
from casework.cases import service
from casework.cases.models import Case
from casework.cases.schemas import CaseOut, CasePageOut, CaseSummaryOut, SearchOut
from casework.workflow.models import CaseWorkflow
from tests.cases.conftest import CASES, household, member, unique
from tests.conftest import principal_headers


def _full_household(document: str) -> dict[str, Any]:
    return household(
        member(
            documents=[{"type": "passport", "number": document}],
            phone="+962 7 9999 0000",
            address="Block 4\nShelter 12",
            narrative="Arrived in 2024.",
            date_of_birth="1990-03-04",
            other_names=["Aminah"],
        ),
        member(relationship="spouse", sex="male", full_name="Sami Spouse", birth_year=1988),
        member(
            relationship="child",
            sex="male",
            birth_year=2016,
            full_name="Omar Child",
            mother=0,
            birth_registration="not_registered",
            nationality_status="at_risk_of_statelessness",
            registration_risk={"exposes_parent": True, "decision": "defer", "reason": "Exposure."},
        ),
        specific_needs=["SC-UC", "LP-RR"],
    )


def _with_workflow_values(session: Session, reference: str) -> None:
    """Give the case a workflow row whose every sealed value is set (dates included)."""
    case = session.scalars(select(Case).where(Case.reference == reference)).one()
    session.add(
        CaseWorkflow(
            case_id=case.id,
            first_instance_outcome="recognized",
            appeal_outcome=None,
            state_decision="accepted",
            submission={"destination_country": "CAN", "priority": "normal", "categories": []},
            best_interests_assessment={"completed_on": "2026-01-02"},
            best_interests_note="Seen with the family.",
            reasons={"case_stage.close": "duplicate"},
        )
    )
    session.flush()


@pytest.mark.parametrize("role", ["caseworker", "supervisor", "vetting_officer"])
@pytest.mark.parametrize("workflow", [False, True])
def test_the_case_read_sends_what_case_out_dumps(
    app: Flask,
    client: FlaskClient,
    keyed_session: Session,
    office_a: str,
    worker_a: dict[str, str],
    register: Any,
    role: str,
    workflow: bool,
) -> None:
    reference = register(worker_a, _full_household(unique("PF-")))["reference"]
    if workflow:
        _with_workflow_values(keyed_session, reference)
    headers = principal_headers(role, office_a)
    with app.test_request_context(headers=headers):
        principal = require_principal()
        case = service.load_case(keyed_session, principal, reference, Permission.CASES_READ)
        view = service.read_case(keyed_session, case, principal)
        dumped = CaseOut().dump(view)
        assert jsonable(view) == dumped
    answer = client.get(f"{CASES}/{reference}", headers=headers)
    assert answer.status_code == 200
    body = answer.get_json()
    assert body == dumped
    assert body["members"][2]["registration_risk"]["decision"] == "defer"
    assert body["members"][0]["date_of_birth"] == "1990-03-04"
    if workflow and role == "supervisor":
        assert body["workflow"]["best_interests_assessment"]["completed_on"] == "2026-01-02"


def test_a_list_page_and_a_search_send_what_their_schemas_dump(
    client: FlaskClient, worker_a: dict[str, str], register: Any
) -> None:
    document = unique("PS-")
    for number in (document, unique("PS-")):
        register(worker_a, _full_household(number))
    page = client.get(f"{CASES}?limit=5", headers=worker_a)
    assert page.status_code == 200
    listed = page.get_json()
    assert len(listed["items"]) == 2
    assert CasePageOut().dump(listed) == listed
    found = client.post(
        f"{CASES}/search", json={"document_number": document}, headers=worker_a
    ).get_json()
    assert len(found["items"]) == 1
    assert SearchOut().dump(found) == found
    assert set(found["items"][0]) == set(CaseSummaryOut().fields)
