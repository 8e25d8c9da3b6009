"""Duplicates and impostors across offices: in scope by reference, elsewhere as alerts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casework.cases.models import DuplicateAlert
from tests.cases.conftest import CASES, audit_entries, household, member, unique

ALERTS = "/api/v1/alerts"


def with_document(number: str, **fields: Any) -> dict[str, Any]:
    return household(member(documents=[{"type": "passport", "number": number}], **fields))


def test_same_office_duplicates_are_returned_by_reference(
    worker_a: dict[str, str], register: Any
) -> None:
    number = unique("DUP")
    first = register(worker_a, with_document(number))
    second = register(worker_a, with_document(number.lower()))
    assert second["possible_duplicates"] == [first["reference"]]


@pytest.mark.parametrize(
    ("first_name", "second_name"),
    [
        ("Mohamed AL-HASSAN", "Hassan, Muhammad al"),  # romanisation and order
        ("Lee Min-jun", "Rhee Min Jun"),  # Korean family-name variants
        ("Amina Yusuf Okafor", "Okafor Amina Yusuf"),  # order alone
        ("Zoë Dubois", "ZOE DUBOIS"),  # accents and case
    ],
)
def test_name_variants_and_order_are_found(
    worker_a: dict[str, str], register: Any, first_name: str, second_name: str
) -> None:
    year = 1960 + len(first_name)
    first = register(worker_a, household(member(full_name=first_name, birth_year=year)))
    second = register(worker_a, household(member(full_name=second_name, birth_year=year)))
    assert first["reference"] in second["possible_duplicates"]


def test_different_birth_years_are_not_duplicates(worker_a: dict[str, str], register: Any) -> None:
    register(worker_a, household(member(full_name="Nadia Haddad Q", birth_year=1970)))
    later = register(worker_a, household(member(full_name="Nadia Haddad Q", birth_year=1971)))
    assert later["possible_duplicates"] == []


def test_another_office_is_not_revealed_and_raises_an_alert_both_offices_see(
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
    assert in_a["possible_duplicates"] == []  # the caseworker learns nothing
    assert db_session.scalar(select(func.count()).select_from(DuplicateAlert)) == 1

    for office, own, other in ((office_b, in_b, office_a), (office_a, in_a, office_b)):
        for role in ("supervisor", "vetting_officer"):
            page = client.get(ALERTS, headers=as_role(role, office)).get_json()
            (alert,) = page["items"]
            assert alert["matched_on"] == "document_number"
            shown = {c["office"]: c["reference"] for c in alert["cases"]}
            assert shown == {office: own["reference"], other: None}
    assert client.get(ALERTS, headers=worker_a).status_code == 403  # caseworkers: no alerts:read
    raised = audit_entries(db_session, action="alert.raise")
    assert {e.target for e in raised} == {in_a["reference"], in_b["reference"]}
    assert json.loads(raised[0].fields) == ["members.documents"]
    assert audit_entries(db_session, in_b["reference"], "alert.read")


def test_an_unrelated_office_sees_no_alert(
    client: FlaskClient,
    worker_a: dict[str, str],
    worker_b: dict[str, str],
    as_role: Any,
    make_office: Any,
    register: Any,
) -> None:
    number = unique("UNR")
    register(worker_b, with_document(number))
    register(worker_a, with_document(number))
    third = make_office("goma-03", "Goma", "COD")
    assert client.get(ALERTS, headers=as_role("supervisor", third)).get_json()["items"] == []


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
    register(worker_b, with_document(number))  # raises the A-B alert once at intake
    check = f"{CASES}/{early['reference']}/duplicates"
    for _ in range(2):
        response = client.post(check, headers=worker_a)
        assert response.status_code == 200
        assert response.get_json() == {"possible_duplicates": [same_office["reference"]]}
    alerts = db_session.scalar(select(func.count()).select_from(DuplicateAlert))
    assert alerts == 2  # early-B and same_office-B, each once
    assert audit_entries(db_session, early["reference"], "case.duplicates")


def test_on_demand_check_refuses_a_body_with_fields(
    client: FlaskClient, worker_a: dict[str, str], register: Any
) -> None:
    ref = register(worker_a)["reference"]
    response = client.post(f"{CASES}/{ref}/duplicates", json={"office": "X"}, headers=worker_a)
    assert response.status_code == 422


def test_alerts_are_paginated(
    client: FlaskClient,
    worker_a: dict[str, str],
    worker_b: dict[str, str],
    as_role: Any,
    office_a: str,
    register: Any,
) -> None:
    for _ in range(3):
        number = unique("PAG")
        register(worker_b, with_document(number))
        register(worker_a, with_document(number))
    headers = as_role("supervisor", office_a)
    first = client.get(ALERTS, query_string={"limit": 2}, headers=headers).get_json()
    second = client.get(
        ALERTS, query_string={"limit": 2, "cursor": first["next_cursor"]}, headers=headers
    ).get_json()
    ids = [a["id"] for a in first["items"] + second["items"]]
    assert len(ids) == len(set(ids)) == 3
    assert second["next_cursor"] is None
