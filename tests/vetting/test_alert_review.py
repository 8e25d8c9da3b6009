"""Reviewing duplicate alerts: from the side of the office's own case, sealed, once."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from casework.cases.models import Case, DuplicateAlert
from casework.vetting import service
from tests.cases.conftest import household, member, unique
from tests.conftest import erase_by_two_people, principal_headers
from tests.vetting.conftest import CANARY, audit_entries, audit_fields, checks_url

ALERTS = "/api/v1/alerts"


def review_url(alert_id: Any) -> str:
    return f"{ALERTS}/{alert_id}/review"


def with_document(number: str, **fields: Any) -> dict[str, Any]:
    return household(member(documents=[{"type": "passport", "number": number}], **fields))


@pytest.fixture
def alerted(
    db_session: Session,
    register: Any,
    vetting_case: Any,
    worker_a: dict[str, str],
    worker_b: dict[str, str],
) -> tuple[dict[str, Any], dict[str, Any], uuid.UUID]:
    """A case of office A at stage vetting, one of office B, and the alert linking them."""
    number = unique("DUPV")
    in_b = register(worker_b, with_document(number))
    in_a = vetting_case(worker_a, with_document(number, full_name="Other Name Entirely"))
    alert_id = db_session.scalars(select(DuplicateAlert.id)).one()
    return in_a, in_b, alert_id


def open_alerts(db_session: Session, reference: str) -> int:
    case = db_session.scalars(select(Case).where(Case.reference == reference)).one()
    return service.open_duplicate_alerts(db_session, case)


def test_each_office_reviews_from_its_own_side(
    client: FlaskClient,
    db_session: Session,
    alerted: Any,
    officer_a: dict[str, str],
    officer_b: dict[str, str],
) -> None:
    in_a, in_b, alert_id = alerted
    assert open_alerts(db_session, in_a["reference"]) == 1
    assert open_alerts(db_session, in_b["reference"]) == 1

    body = {"outcome": "distinct_persons", "notes": "Different fathers' names."}
    response = client.post(review_url(alert_id), json=body, headers=officer_a)
    assert response.status_code == 201, response.get_json()
    answer = response.get_json()
    assert answer["references"] == [in_a["reference"]]  # never the other office's
    assert answer["outcome"] == "distinct_persons"
    assert answer["reviewed_by"] == "officer-a"
    assert open_alerts(db_session, in_a["reference"]) == 0
    assert open_alerts(db_session, in_b["reference"]) == 1
    # The reviewed case changed (its open alerts did): its version moved.
    assert client.get(checks_url(in_a["reference"]), headers=officer_a).headers["ETag"] == '"v2"'

    again = client.post(review_url(alert_id), json=body, headers=officer_a)
    assert again.status_code == 409
    assert again.get_json()["type"] == "urn:casework:problem:alert-already-reviewed"

    other = client.post(
        review_url(alert_id), json={"outcome": "suspected_impostor"}, headers=officer_b
    )
    assert other.status_code == 201
    assert other.get_json()["references"] == [in_b["reference"]]
    assert open_alerts(db_session, in_b["reference"]) == 0


def test_identity_is_verified_only_once_alerts_are_reviewed(
    client: FlaskClient, alerted: Any, officer_a: dict[str, str]
) -> None:
    in_a, _in_b, alert_id = alerted
    url = checks_url(in_a["reference"], "identity_verification")
    refused = client.put(
        url, json={"status": "verified"}, headers={**officer_a, "If-Match": '"v1"'}
    )
    assert refused.status_code == 409
    assert refused.get_json()["type"] == "urn:casework:problem:duplicate-alerts-open"
    # Recording that verification failed or is pending stays possible.
    assert client.put(url, json={"status": "not_verified"},
                      headers={**officer_a, "If-Match": '"v1"'}).status_code == 200  # fmt: skip
    client.post(review_url(alert_id), json={"outcome": "family_split"}, headers=officer_a)
    allowed = client.put(
        url, json={"status": "verified"}, headers={**officer_a, "If-Match": '"v3"'}
    )
    assert allowed.status_code == 200, allowed.get_json()


def test_out_of_scope_and_missing_alerts_are_not_found(
    client: FlaskClient,
    db_session: Session,
    alerted: Any,
    office_c: str,
) -> None:
    _in_a, _in_b, alert_id = alerted
    body = {"outcome": "distinct_persons"}
    elsewhere = principal_headers("vetting_officer", office_c, "officer-c")
    assert client.post(review_url(alert_id), json=body, headers=elsewhere).status_code == 404
    assert audit_entries(db_session, action="authz.denied")
    assert client.post(review_url(uuid.uuid4()), json=body, headers=elsewhere).status_code == 404


@pytest.mark.parametrize("role", ["caseworker", "auditor", "admin"])
def test_roles_without_alerts_and_vetting_are_refused(
    client: FlaskClient, alerted: Any, office_a: str, role: str
) -> None:
    _in_a, _in_b, alert_id = alerted
    office = office_a if role == "caseworker" else None
    response = client.post(
        review_url(alert_id),
        json={"outcome": "distinct_persons"},
        headers=principal_headers(role, office),
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    "body",
    [{}, {"outcome": "probably_fine"}, {"outcome": "distinct_persons", "extra": 1},
     {"outcome": "distinct_persons", "notes": ""}],
)  # fmt: skip
def test_invalid_reviews_are_refused(
    client: FlaskClient, alerted: Any, officer_a: dict[str, str], body: dict[str, Any]
) -> None:
    _in_a, _in_b, alert_id = alerted
    assert client.post(review_url(alert_id), json=body, headers=officer_a).status_code == 422


def test_reviews_are_sealed_and_audited_by_field_name(
    client: FlaskClient,
    db_session: Session,
    alerted: Any,
    officer_a: dict[str, str],
) -> None:
    in_a, _in_b, alert_id = alerted
    body = {"outcome": "suspected_impostor", "notes": CANARY}
    assert client.post(review_url(alert_id), json=body, headers=officer_a).status_code == 201
    rows = db_session.execute(text("SELECT * FROM duplicate_alert_reviews")).all()
    raw = b"".join(
        value if isinstance(value, bytes) else str(value).encode() for row in rows for value in row
    )
    assert CANARY.encode() not in raw
    assert b"impostor" not in raw
    (entry,) = audit_entries(db_session, in_a["reference"], "alert.review")
    assert audit_fields(entry) == ["review.notes", "review.outcome"]
    assert "impostor" not in entry.fields


def test_erasing_a_case_takes_its_alerts_reviews_with_them(
    client: FlaskClient,
    db_session: Session,
    alerted: Any,
    officer_a: dict[str, str],
    office_a: str,
) -> None:
    in_a, in_b, alert_id = alerted
    client.post(review_url(alert_id), json={"outcome": "distinct_persons"}, headers=officer_a)
    supervisor_a = principal_headers("supervisor", office_a, "supervisor-a")
    second = principal_headers("supervisor", office_a, "supervisor-a2")
    erased = erase_by_two_people(client, in_a["reference"], supervisor_a, second)
    assert erased.status_code == 200, erased.get_json()
    assert db_session.execute(text("SELECT count(*) FROM duplicate_alert_reviews")).scalar() == 0
    assert open_alerts(db_session, in_b["reference"]) == 0
