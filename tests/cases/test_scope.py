"""Office scope: another office's cases cannot be read, listed, searched or detected."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.cases.conftest import CASES, audit_entries, household, member, unique
from tests.conftest import erase_by_two_people

MISSING = "0000000000" + "0"  # a well-formed reference (check symbol 0) that does not exist


def _strip(problem: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in problem.items() if k != "request_id"}


@pytest.fixture
def b_case(worker_b: dict[str, str], register: Any) -> dict[str, Any]:
    number = unique("SCOPE")
    body = household(
        member(
            full_name="Bora Scope",
            birth_year=1977,
            documents=[{"type": "passport", "number": number}],
        ),
        specific_needs=["SV-VA"],
    )
    created: dict[str, Any] = register(worker_b, body)
    created["number"] = number
    return created


@pytest.mark.parametrize(
    ("method", "suffix", "role", "body", "headers"),
    [
        ("GET", "", "caseworker", None, {}),
        ("PATCH", "", "caseworker", {"specific_needs": []}, {"If-Match": '"v1"'}),
        ("PATCH", "", "caseworker", {"specific_needs": []}, {}),
        ("POST", "/erasure-requests", "supervisor", {"reason": "Asked to be erased."}, {}),
        ("GET", "/history", "caseworker", None, {}),
        ("POST", "/duplicates", "caseworker", None, {}),
    ],
)
def test_another_offices_case_answers_exactly_like_a_missing_one(
    client: FlaskClient,
    db_session: Session,
    as_role: Any,
    office_a: str,
    b_case: dict[str, Any],
    method: str,
    suffix: str,
    role: str,
    body: Any,
    headers: dict[str, str],
) -> None:
    caller = {**as_role(role, office_a), **headers}
    theirs = client.open(
        f"{CASES}/{b_case['reference']}{suffix}", method=method, json=body, headers=caller
    )
    missing = client.open(f"{CASES}/{MISSING}{suffix}", method=method, json=body, headers=caller)
    assert theirs.status_code == missing.status_code == 404
    assert _strip(theirs.get_json()) == _strip(missing.get_json())
    assert "ETag" not in theirs.headers
    denied = audit_entries(db_session, b_case["reference"], "authz.denied")
    assert denied
    assert denied[-1].office == office_a
    after = client.get(f"{CASES}/{b_case['reference']}", headers=as_role("caseworker", "irb-02"))
    assert after.get_json()["version"] == 1


def test_lists_and_searches_show_nothing_of_another_office(
    client: FlaskClient, worker_a: dict[str, str], b_case: dict[str, Any]
) -> None:
    listed = client.get(CASES, headers=worker_a).get_json()
    assert listed == {"items": [], "next_cursor": None}
    for query in ({"specific_need": "SV-VA"}, {"office": "irb-02"}):
        assert client.get(CASES, query_string=query, headers=worker_a).get_json()["items"] == []
    searches = [
        {"document_number": b_case["number"]},
        {"full_name": "Bora Scope", "birth_year": 1977},
    ]
    for query in searches:
        found = client.post(f"{CASES}/search", json=query, headers=worker_a)
        assert found.status_code == 200
        assert found.get_json() == {"items": []}


def test_an_erased_case_of_another_office_is_404_not_410(
    client: FlaskClient, as_role: Any, office_a: str, office_b: str, b_case: dict[str, Any]
) -> None:
    url = f"{CASES}/{b_case['reference']}"
    erase = erase_by_two_people(
        client,
        b_case["reference"],
        as_role("supervisor", office_b),
        as_role("supervisor", office_b, "second-supervisor"),
    )
    assert erase.status_code == 200
    assert client.get(url, headers=as_role("caseworker", office_b)).status_code == 410
    assert client.get(url, headers=as_role("caseworker", office_a)).status_code == 404


@pytest.mark.parametrize("role", ["admin", "auditor"])
def test_officeless_roles_see_no_case(
    client: FlaskClient, as_role: Any, b_case: dict[str, Any], role: str
) -> None:
    headers = as_role(role)
    assert client.get(f"{CASES}/{b_case['reference']}", headers=headers).status_code == 403
    assert client.get(CASES, headers=headers).status_code == 403


def test_staff_without_an_office_list_and_find_nothing(
    client: FlaskClient, as_role: Any, b_case: dict[str, Any]
) -> None:
    nowhere = as_role("supervisor", None)
    assert client.get(CASES, headers=nowhere).get_json()["items"] == []
    assert client.get(f"{CASES}/{b_case['reference']}", headers=nowhere).status_code == 404
    found = client.post(
        f"{CASES}/search", json={"document_number": b_case["number"]}, headers=nowhere
    )
    assert found.get_json()["items"] == []
    assert client.get("/api/v1/alerts", headers=nowhere).get_json()["items"] == []
