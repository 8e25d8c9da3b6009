"""GET /api/v1/cases (filters, pages) and POST /api/v1/cases/search (exact, in scope)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.cases.conftest import CASES, audit_entries, household, member, unique

SEARCH = f"{CASES}/search"


def refs(response: Any) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [item["reference"] for item in response.get_json()["items"]]


@pytest.fixture
def three(worker_a: dict[str, str], register: Any) -> list[str]:
    """Three cases of office A, oldest first: needs, a stateless child, a registered child."""
    child = {"relationship": "child", "sex": "male", "birth_year": 2018, "full_name": "Kid"}
    bodies = [
        household(member(), specific_needs=["SV-VA"]),
        household(
            member(),
            member(**child, nationality_status="stateless_determined"),
            specific_needs=["SC-UC", "LP-RR"],
        ),
        household(member(), member(**child, birth_registration="certificate_issued")),
    ]
    return [register(worker_a, body)["reference"] for body in bodies]


def test_list_shows_own_office_newest_first_with_summaries(
    client: FlaskClient,
    db_session: Session,
    worker_a: dict[str, str],
    worker_b: dict[str, str],
    register: Any,
    three: list[str],
) -> None:
    register(worker_b)
    response = client.get(CASES, headers=worker_a)
    assert refs(response) == three[::-1]
    summary = response.get_json()["items"][1]
    assert summary == {
        "reference": three[1],
        "office": "amm-01",
        "stage": "intake",
        "resettlement_stage": "not_considered",
        "member_count": 2,
        "specific_needs": ["SC-UC", "LP-RR"],
    }
    assert "members" not in summary
    listed = audit_entries(db_session, action="case.list")
    assert sorted(e.target for e in listed) == sorted(three)
    assert "specific_needs" in json.loads(listed[0].fields)


def test_cursor_pagination_walks_every_case_once(
    client: FlaskClient, worker_a: dict[str, str], three: list[str]
) -> None:
    first = client.get(CASES, query_string={"limit": 2}, headers=worker_a)
    cursor = first.get_json()["next_cursor"]
    assert refs(first) == three[:0:-1]
    assert cursor
    second = client.get(CASES, query_string={"limit": 2, "cursor": cursor}, headers=worker_a)
    assert refs(second) == three[:1]
    assert second.get_json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "wanted"),
    [
        ({"specific_need": "SV-VA"}, [0]),
        ({"specific_need": "LP-RR"}, [1]),
        ({"nationality_status": "stateless_determined"}, [1]),
        ({"birth_registration": "certificate_issued"}, [2]),
        ({"birth_registration": "certificate_issued", "specific_need": "SC-UC"}, []),
        ({"stage": "intake"}, [2, 1, 0]),
        ({"stage": "vetting"}, []),
        ({"resettlement_stage": "not_considered", "specific_need": "SC-UC"}, [1]),
        ({"office": "amm-01"}, [2, 1, 0]),
        ({"office": "irb-02"}, []),
    ],
)
def test_filters(
    client: FlaskClient,
    worker_a: dict[str, str],
    three: list[str],
    query: dict[str, str],
    wanted: list[int],
) -> None:
    assert refs(client.get(CASES, query_string=query, headers=worker_a)) == [
        three[i] for i in wanted
    ]


def test_encrypted_filter_stops_when_the_page_is_full(
    client: FlaskClient, worker_a: dict[str, str], register: Any
) -> None:
    made = [register(worker_a, household(specific_needs=["SM-CI"]))["reference"] for _ in range(3)]
    first = client.get(CASES, query_string={"specific_need": "SM-CI", "limit": 2}, headers=worker_a)
    assert refs(first) == made[:0:-1]
    cursor = first.get_json()["next_cursor"]
    query = {"specific_need": "SM-CI", "limit": 2, "cursor": cursor}
    rest = client.get(CASES, query_string=query, headers=worker_a)
    assert refs(rest) == made[:1]
    assert rest.get_json()["next_cursor"] is None


def test_a_bounded_scan_returns_a_short_page_and_a_cursor(
    app: Flask,
    client: FlaskClient,
    worker_a: dict[str, str],
    register: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = register(worker_a, household(specific_needs=["TR-PI"]))["reference"]
    for _ in range(3):
        register(worker_a)
    monkeypatch.setitem(app.config["CASEWORK"], "cases_filter_scan_limit", 2)
    query: dict[str, Any] = {"specific_need": "TR-PI", "limit": 5}
    found: list[str] = []
    for _round in range(5):
        page = client.get(CASES, query_string=query, headers=worker_a)
        found += refs(page)
        query["cursor"] = page.get_json()["next_cursor"]
        if not query["cursor"]:
            break
    assert found == [target]


@pytest.mark.parametrize(
    "query",
    [
        {"specific_needs": "SV-VA"},
        {"specific_need": "ZZ-ZZ"},
        {"stage": "limbo"},
        {"cursor": "not-a-cursor!"},
        {"cursor": "eyJ0IjoxfQ"},
        {"limit": 0},
        {"limit": 100000},
    ],
)
def test_bad_list_parameters_are_422(
    client: FlaskClient, worker_a: dict[str, str], query: dict[str, Any]
) -> None:
    assert client.get(CASES, query_string=query, headers=worker_a).status_code == 422


# --- search -----------------------------------------------------------------------------


def test_search_by_document_is_type_agnostic_and_ignores_separators(
    client: FlaskClient, db_session: Session, worker_a: dict[str, str], register: Any
) -> None:
    number = unique("QD")
    doc = {"type": "refugee_id", "number": f"{number[:3]}-{number[3:]}"}
    ref = register(worker_a, household(member(documents=[doc])))["reference"]
    register(worker_a)
    assert refs(
        client.post(SEARCH, json={"document_number": number.lower()}, headers=worker_a)
    ) == [ref]
    typed = {"document_number": number, "document_type": "refugee_id"}
    assert refs(client.post(SEARCH, json=typed, headers=worker_a)) == [ref]
    other = {"document_number": number, "document_type": "passport"}
    assert refs(client.post(SEARCH, json=other, headers=worker_a)) == []
    (entry, *_) = audit_entries(db_session, ref, "case.search")
    assert "members.documents" in json.loads(entry.fields)


def test_search_by_name_ignores_order_case_accents_and_romanisation(
    client: FlaskClient, worker_a: dict[str, str], register: Any
) -> None:
    ref = register(worker_a, household(member(full_name="Mohamed AL-HASSAN", birth_year=1985)))
    for spelling in ("Hassan, Muhammad al", "muhammad al hasan", "Mohammed Al Hassán"):
        query = {"full_name": spelling, "birth_year": 1985}
        assert refs(client.post(SEARCH, json=query, headers=worker_a)) == [ref["reference"]]
    wrong_year = {"full_name": "Hassan, Muhammad al", "birth_year": 1986}
    assert refs(client.post(SEARCH, json=wrong_year, headers=worker_a)) == []


def test_search_finds_other_names_and_the_year_of_a_date_of_birth(
    client: FlaskClient, worker_a: dict[str, str], register: Any
) -> None:
    body = household(
        member(
            full_name="Ji-woo Park",
            other_names=["Jiwoo Bak"],
            date_of_birth="1979-02-03",
            birth_year=None,
        )
    )
    ref = register(worker_a, body)["reference"]
    query = {"full_name": "Bak Jiwoo", "birth_year": 1979}
    assert refs(client.post(SEARCH, json=query, headers=worker_a)) == [ref]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"full_name": "A"},
        {"document_number": "X1", "full_name": "A", "birth_year": 1990},
        {"document_number": "---"},
        {"full_name": "!!!", "birth_year": 1990},
        {"document_number": "X1", "extra": 1},
    ],
)
def test_bad_searches_are_422(
    client: FlaskClient, worker_a: dict[str, str], body: dict[str, Any]
) -> None:
    assert client.post(SEARCH, json=body, headers=worker_a).status_code == 422


def test_an_empty_search_is_audited_without_target(
    client: FlaskClient, db_session: Session, worker_a: dict[str, str], offices: Any
) -> None:
    assert refs(client.post(SEARCH, json={"document_number": "NOPE123"}, headers=worker_a)) == []
    (entry,) = audit_entries(db_session, action="case.search")
    assert entry.target is None
    assert json.loads(entry.fields) == ["members.documents"]


def test_lists_and_searches_never_decrypt_names_or_narratives(
    client: FlaskClient,
    worker_a: dict[str, str],
    three: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from casework.cases.models import CaseMember

    def refuse(_data: bytes) -> None:
        raise AssertionError("decrypted a field a list does not need")

    for name in ("narrative", "full_name", "phone", "address"):
        monkeypatch.setattr(getattr(CaseMember, name).codec, "decode", refuse)
    query = {"nationality_status": "stateless_determined", "specific_need": "SC-UC"}
    assert refs(client.get(CASES, query_string=query, headers=worker_a)) == [three[1]]
    assert len(refs(client.get(CASES, headers=worker_a))) == 3


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_search_is_its_own_route_not_a_reference(
    client: FlaskClient, worker_a: dict[str, str], method: str
) -> None:
    """``/cases/search`` is never read as a case reference: other methods answer 405."""
    response = client.open(SEARCH, method=method, headers=worker_a)
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}
    options = client.options(SEARCH, headers=worker_a)
    assert set(options.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}
