"""Reviewing duplicate alerts inside an office: from each case's side, sealed, once.

Alerts are raised between offices (for integrity officers); an office reviews
one once both cases are its own, here after the other case was handed over.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from casework.cases.models import Case, DuplicateAlert
from casework.vetting import service
from tests.cases.conftest import household, member, unique
from tests.conftest import erase_by_two_people, principal_headers
from tests.vetting.conftest import CANARY, audit_entries, audit_fields, checks_url

ALERTS = "/api/v1/alerts"
INTEGRITY = principal_headers("integrity_officer", None, "integrity-1")


def review_url(alert_id: Any) -> str:
    return f"{ALERTS}/{alert_id}/review"


def post_review(client: FlaskClient, url: str, *, json: Any, headers: dict[str, str]) -> Any:
    """Review with the alert's current ETag as If-Match, as a client reads it."""
    seen = client.get(url.removesuffix("/review"), headers=headers)
    etag = seen.headers.get("ETag", '"v1"')
    return client.post(url, json=json, headers={**headers, "If-Match": etag})


def with_document(number: str, **fields: Any) -> dict[str, Any]:
    return household(member(documents=[{"type": "passport", "number": number}], **fields))


@pytest.fixture
def alerted(
    client: FlaskClient,
    db_session: Session,
    register: Any,
    vetting_case: Any,
    worker_a: dict[str, str],
    worker_b: dict[str, str],
) -> tuple[dict[str, Any], dict[str, Any], uuid.UUID]:
    """A case of office A at stage vetting, one registered in office B and since handed to
    office A, and the alert linking them."""
    number = unique("DUPV")
    in_b = register(worker_b, with_document(number))
    in_a = vetting_case(worker_a, with_document(number, full_name="Other Name Entirely"))
    assert client.get(ALERTS, headers=INTEGRITY).status_code == 200  # scans the queue
    alert_id = db_session.scalars(select(DuplicateAlert.id)).one()
    own = select(Case.office_code).where(Case.reference == in_a["reference"])
    office_a = db_session.scalars(own).one()
    db_session.execute(
        update(Case).where(Case.reference == in_b["reference"]).values(office_code=office_a)
    )
    return in_a, in_b, alert_id


def open_alerts(db_session: Session, reference: str) -> int:
    case = db_session.scalars(select(Case).where(Case.reference == reference)).one()
    return service.open_duplicate_alerts(db_session, case)


def test_the_office_reviews_from_each_of_its_cases_side(
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
    response = post_review(client, review_url(alert_id), json=body, headers=officer_a)
    assert response.status_code == 201, response.get_json()
    answer = response.get_json()
    assert answer["references"] == sorted([in_a["reference"], in_b["reference"]])
    assert answer["outcome"] == "distinct_persons"
    assert answer["reviewed_by"] == "officer-a"
    assert open_alerts(db_session, in_a["reference"]) == 0
    assert open_alerts(db_session, in_b["reference"]) == 0
    # The reviewed case changed (its open alerts did): its version moved.
    assert client.get(checks_url(in_a["reference"]), headers=officer_a).headers["ETag"] == '"v2"'

    again = post_review(client, review_url(alert_id), json=body, headers=officer_a)
    assert again.status_code == 409
    assert again.get_json()["type"] == "urn:casework:problem:alert-already-reviewed"
    # Office B handed its case over: the alert is no longer its business.
    other = post_review(
        client, review_url(alert_id), json={"outcome": "suspected_impostor"}, headers=officer_b
    )
    assert other.status_code == 404


def test_alerts_between_offices_hold_up_no_office(
    client: FlaskClient,
    db_session: Session,
    register: Any,
    vetting_case: Any,
    worker_a: dict[str, str],
    worker_b: dict[str, str],
    officer_a: dict[str, str],
) -> None:
    number = unique("XOFF")
    register(worker_b, with_document(number))
    in_a = vetting_case(worker_a, with_document(number, full_name="Other Name Entirely"))
    client.get(ALERTS, headers=INTEGRITY)
    alert_id = db_session.scalars(select(DuplicateAlert.id)).one()
    assert open_alerts(db_session, in_a["reference"]) == 0
    body = {"outcome": "distinct_persons"}
    assert client.post(review_url(alert_id), json=body, headers=officer_a).status_code == 404
    url = checks_url(in_a["reference"], "identity_verification")
    headers = {**officer_a, "If-Match": '"v1"'}
    verified = client.put(url, json={"status": "verified"}, headers=headers)
    assert verified.status_code == 200, verified.get_json()


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
    post_review(client, review_url(alert_id), json={"outcome": "family_split"}, headers=officer_a)
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
    assert (
        post_review(client, review_url(alert_id), json=body, headers=elsewhere).status_code == 404
    )
    assert audit_entries(db_session, action="authz.denied")
    assert (
        post_review(client, review_url(uuid.uuid4()), json=body, headers=elsewhere).status_code
        == 404
    )


@pytest.mark.parametrize("role", ["caseworker", "auditor", "admin"])
def test_roles_without_alerts_and_vetting_are_refused(
    client: FlaskClient, alerted: Any, office_a: str, role: str
) -> None:
    _in_a, _in_b, alert_id = alerted
    office = office_a if role == "caseworker" else None
    response = post_review(
        client,
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
    assert (
        post_review(client, review_url(alert_id), json=body, headers=officer_a).status_code == 422
    )


def test_reviews_are_sealed_and_audited_by_field_name(
    client: FlaskClient,
    db_session: Session,
    alerted: Any,
    officer_a: dict[str, str],
) -> None:
    in_a, _in_b, alert_id = alerted
    body = {"outcome": "suspected_impostor", "notes": CANARY}
    assert (
        post_review(client, review_url(alert_id), json=body, headers=officer_a).status_code == 201
    )
    rows = db_session.execute(text("SELECT * FROM duplicate_alert_reviews")).all()
    raw = b"".join(
        value if isinstance(value, bytes) else str(value).encode() for row in rows for value in row
    )
    assert CANARY.encode() not in raw
    assert b"impostor" not in raw
    (entry,) = audit_entries(db_session, in_a["reference"], "alert.review")  # and one for in_b
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
    post_review(
        client, review_url(alert_id), json={"outcome": "distinct_persons"}, headers=officer_a
    )
    supervisor_a = principal_headers("supervisor", office_a, "supervisor-a")
    second = principal_headers("supervisor", office_a, "supervisor-a2")
    erased = erase_by_two_people(client, in_a["reference"], supervisor_a, second)
    assert erased.status_code == 200, erased.get_json()
    assert db_session.execute(text("SELECT count(*) FROM duplicate_alert_reviews")).scalar() == 0
    assert open_alerts(db_session, in_b["reference"]) == 0
