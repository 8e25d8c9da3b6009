"""Duplicates and impostors: in the office with a score, across offices for integrity officers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casework.cases.models import DuplicateAlert, DuplicateCheck
from tests.cases.conftest import CASES, audit_entries, household, member, unique

ALERTS = "/api/v1/alerts"
INTEGRITY = {"X-Test-Principal": "integrity_officer;;integrity-1"}


def with_document(number: str, **fields: Any) -> dict[str, Any]:
    return household(member(documents=[{"type": "passport", "number": number}], **fields))


def refs(found: list[dict[str, Any]]) -> list[str]:
    return [item["reference"] for item in found]


def test_same_office_duplicates_carry_a_score_and_what_matched(
    worker_a: dict[str, str], register: Any
) -> None:
    number = unique("DUP")
    first = register(worker_a, with_document(number))
    second = register(worker_a, with_document(number.lower()))
    assert second["possible_duplicates"] == [
        {"reference": first["reference"], "score": 1.0, "matched_on": ["document_number"]}
    ]


@pytest.mark.parametrize(
    ("first_name", "second_name", "year_shift", "matched_on"),
    [
        ("Mohamed AL-HASSAN", "Hassan, Muhammad al", 0, "name_birth_year"),
        ("Lee Min-jun", "Rhee Min Jun", 0, "name_birth_year"),
        ("Amina Yusuf Okafor", "Okafor Amina Yusuf", 0, "name_birth_year"),
        ("Zoë Dubois", "ZOE DUBOIS", 0, "name_birth_year"),
        ("Kim Min-jun", "MINJUN KIM", 0, "name_variant"),  # joined, family name last
        ("Kim Minjun", "Kim, Min Jun", 0, "name_variant"),  # joined / spaced
        ("Jeong Hyeon-u", "Chung Hyun Woo", 0, "name_birth_year"),  # RR / passport
        ("Park Cheol-su", "Pak Chol Su", 0, "name_birth_year"),  # RR / MR
        ("Choi Seong-ho", "Choe Sungho", 1, "name_variant"),  # and a year off by one
        ("Abdul Rahman Al-Amin", "Abdulrahman El Amin", 0, "name_birth_year"),
        ("Abd al-Rahman Yusuf", "Abdelrahman Youssef", 0, "name_birth_year"),
        ("Mohammed Alhassan", "Muhammad al-Hassan", 0, "name_birth_year"),
    ],
)
def test_spelling_variants_are_found(
    worker_a: dict[str, str],
    register: Any,
    first_name: str,
    second_name: str,
    year_shift: int,
    matched_on: str,
) -> None:
    year = 1950 + len(first_name) + len(second_name)
    first = register(worker_a, household(member(full_name=first_name, birth_year=year)))
    second = register(
        worker_a, household(member(full_name=second_name, birth_year=year + year_shift))
    )
    (found,) = [d for d in second["possible_duplicates"] if d["reference"] == first["reference"]]
    assert matched_on in found["matched_on"]
    assert 0.8 <= found["score"] <= 1.0


@pytest.mark.parametrize(
    ("first_name", "second_name", "year_shift", "sex"),
    [
        ("Kim Min-jun", "Kim Min-seo", 0, "female"),  # siblings sharing a syllable
        ("Kim Min-jun", "Kim Ji-hoon", 0, "female"),  # same family name and year
        ("Nadia Haddad Q", "Nadia Haddad Q", 2, "female"),  # two years apart
        ("Lee Seo-yeon", "Lee Seo-yun", 0, "female"),  # 서연 / 서윤 kept apart
        ("Park Ji-ho", "Park Jiho", 0, "male"),  # same name, other sex
    ],
)
def test_different_people_are_not_reported(
    worker_a: dict[str, str],
    register: Any,
    first_name: str,
    second_name: str,
    year_shift: int,
    sex: str,
) -> None:
    year = 1900 + len(first_name) * 3 + year_shift * 7
    register(worker_a, household(member(full_name=first_name, birth_year=year, sex="female")))
    later = register(
        worker_a,
        household(member(full_name=second_name, birth_year=year + year_shift, sex=sex)),
    )
    assert later["possible_duplicates"] == []


def _comparable(view: dict[str, Any]) -> dict[str, Any]:
    """An intake answer without what differs between any two registrations."""
    drop = {"reference", "created_at", "updated_at"}
    kept = {k: v for k, v in view.items() if k not in drop}
    personal = {"id", "full_name", "documents"}
    kept["members"] = [{k: v for k, v in m.items() if k not in personal} for m in view["members"]]
    return kept


def test_office_staff_answers_do_not_depend_on_a_match_in_another_office(
    client: FlaskClient,
    worker_a: dict[str, str],
    worker_b: dict[str, str],
    as_role: Any,
    office_a: str,
    register: Any,
) -> None:
    """The same registration in office A, once with a match in office B and once without:
    everything office A's staff can ask afterwards answers the same."""
    answers = []
    for with_match in (True, False):
        number = unique("ORC")
        body = with_document(number, full_name=f"Oracle {unique('Probe')}", birth_year=1977)
        if with_match:
            register(worker_b, with_document(number, full_name="Someone In B"))
        case = register(worker_a, body)
        url = f"{CASES}/{case['reference']}"
        supervisor = as_role("supervisor", office_a)
        seen = {
            "intake": _comparable(case),
            "check": client.post(f"{url}/duplicates", headers=worker_a).get_json(),
            "alerts": client.get(ALERTS, headers=supervisor).get_json(),
        }
        client.get(ALERTS, headers=INTEGRITY)  # the cross-office scan runs here
        read = client.get(url, headers=supervisor)
        seen["etag"] = read.headers["ETag"]
        seen["read"] = _comparable(read.get_json())
        history = client.get(f"{url}/history", headers=supervisor).get_json()
        seen["history"] = [(e["action"], e["fields"]) for e in history["items"]]
        seen["alerts_after_scan"] = client.get(ALERTS, headers=supervisor).get_json()
        answers.append(seen)
    with_match, without = answers
    assert with_match == without
    assert with_match["alerts"] == {"items": [], "next_cursor": None}


def test_a_cross_office_match_reaches_the_integrity_officer_only(
    client: FlaskClient,
    db_session: Session,
    worker_a: dict[str, str],
    worker_b: dict[str, str],
    as_role: Any,
    office_a: str,
    office_b: str,
    register: Any,
) -> None:
    number = unique("IMP")
    in_b = register(worker_b, with_document(number))
    in_a = register(worker_a, with_document(number, full_name="Someone Else Entirely"))
    assert in_a["possible_duplicates"] == []
    assert db_session.scalar(select(func.count()).select_from(DuplicateAlert)) == 0
    assert db_session.scalar(select(func.count()).select_from(DuplicateCheck)) >= 2

    page = client.get(ALERTS, headers=INTEGRITY).get_json()
    (alert,) = page["items"]
    assert alert["matched_on"] == "document_number"
    assert alert["score"] == 1.0
    shown = {c["office"]: c["reference"] for c in alert["cases"]}
    assert shown == {office_a: in_a["reference"], office_b: in_b["reference"]}
    assert db_session.scalar(select(func.count()).select_from(DuplicateCheck)) == 0

    for office in (office_a, office_b):
        for role in ("supervisor", "vetting_officer"):
            assert client.get(ALERTS, headers=as_role(role, office)).get_json()["items"] == []
    assert client.get(ALERTS, headers=worker_a).status_code == 403  # no alerts:read
    raised = audit_entries(db_session, action="alert.raise")
    assert {e.target for e in raised} == {in_a["reference"], in_b["reference"]}
    assert json.loads(raised[0].fields) == ["members.documents"]
    assert audit_entries(db_session, in_b["reference"], "alert.read")


def test_integrity_officers_review_cross_office_alerts_without_touching_the_cases(
    client: FlaskClient,
    worker_a: dict[str, str],
    worker_b: dict[str, str],
    as_role: Any,
    office_a: str,
    register: Any,
) -> None:
    number = unique("REV")
    in_b = register(worker_b, with_document(number))
    in_a = register(worker_a, with_document(number))
    (alert,) = client.get(ALERTS, headers=INTEGRITY).get_json()["items"]
    review = f"{ALERTS}/{alert['id']}/review"
    body = {"outcome": "suspected_impostor", "notes": "Same passport, two offices."}
    office_reviewer = as_role("vetting_officer", office_a)
    etag = {"If-Match": f'"v{alert["version"]}"'}
    assert client.post(review, json=body, headers={**office_reviewer, **etag}).status_code == 404
    done = client.post(review, json=body, headers={**INTEGRITY, **etag})
    assert done.status_code == 201, done.get_json()
    assert sorted(done.get_json()["references"]) == sorted([in_a["reference"], in_b["reference"]])
    again = {**INTEGRITY, "If-Match": done.headers["ETag"]}
    assert client.post(review, json=body, headers=again).status_code == 409
    read = client.get(f"{CASES}/{in_a['reference']}", headers=as_role("supervisor", office_a))
    assert read.headers["ETag"] == '"v1"'  # the office's case did not change


def test_on_demand_check_finds_later_registrations_and_raises_each_alert_once(
    client: FlaskClient,
    db_session: Session,
    worker_a: dict[str, str],
    worker_b: dict[str, str],
    register: Any,
) -> None:
    number = unique("LATE")
    early = register(worker_a, with_document(number))
    same_office = register(worker_a, with_document(number))
    register(worker_b, with_document(number))
    check = f"{CASES}/{early['reference']}/duplicates"
    for _ in range(2):
        response = client.post(check, headers=worker_a)
        assert response.status_code == 200
        assert refs(response.get_json()["possible_duplicates"]) == [same_office["reference"]]
        client.get(ALERTS, headers=INTEGRITY)
    alerts = db_session.scalar(select(func.count()).select_from(DuplicateAlert))
    assert alerts == 2  # early-B and same_office-B, each once
    assert audit_entries(db_session, early["reference"], "case.duplicates")


def test_on_demand_check_refuses_a_body_with_fields(
    client: FlaskClient, worker_a: dict[str, str], register: Any
) -> None:
    ref = register(worker_a)["reference"]
    response = client.post(f"{CASES}/{ref}/duplicates", json={"office": "X"}, headers=worker_a)
    assert response.status_code == 422


def test_search_uses_the_same_normalisation(
    client: FlaskClient, worker_a: dict[str, str], worker_b: dict[str, str], register: Any
) -> None:
    case = register(worker_a, household(member(full_name="Jeong Min-jun", birth_year=1991)))
    register(worker_b, household(member(full_name="Jeong Min-jun", birth_year=1991)))
    for spelling in ("MINJUN CHUNG", "Jung, Min Joon"):
        found = client.post(
            f"{CASES}/search", json={"full_name": spelling, "birth_year": 1991}, headers=worker_a
        ).get_json()["items"]
        assert [c["reference"] for c in found] == [case["reference"]]


def test_alerts_are_paginated(
    client: FlaskClient,
    worker_a: dict[str, str],
    worker_b: dict[str, str],
    register: Any,
) -> None:
    for _ in range(3):
        number = unique("PAG")
        register(worker_b, with_document(number))
        register(worker_a, with_document(number))
    first = client.get(ALERTS, query_string={"limit": 2}, headers=INTEGRITY).get_json()
    second = client.get(
        ALERTS, query_string={"limit": 2, "cursor": first["next_cursor"]}, headers=INTEGRITY
    ).get_json()
    ids = [a["id"] for a in first["items"] + second["items"]]
    assert len(ids) == len(set(ids)) == 3
    assert second["next_cursor"] is None
