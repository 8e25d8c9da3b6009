"""POST /api/v1/cases: intake, its validation, and what it stores."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casework.cases.models import BlindIndexEntry, Case
from casework.security.models import CaseKey
from tests.cases.conftest import CASES, audit_entries, household, member


def test_intake_answers_201_with_the_whole_case(
    client: FlaskClient, worker_a: dict[str, str], office_a: str
) -> None:
    body = household(
        member(
            documents=[{"type": "passport", "number": "P1234567"}],
            phone="+962 7 9999 0000",
            address="Block 4\nShelter 12",
            narrative="Arrived in 2024.",
            date_of_birth="1990-03-04",
            other_names=["Aminah"],
        ),
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
    response = client.post(CASES, json=body, headers=worker_a)
    assert response.status_code == 201
    case = response.get_json()
    assert response.headers["ETag"] == '"v1"'
    assert response.headers["Location"] == f"{CASES}/{case['reference']}"
    assert case["office"] == office_a
    assert (case["stage"], case["resettlement_stage"], case["version"]) == (
        "intake",
        "not_considered",
        1,
    )
    assert case["specific_needs"] == ["SC-UC", "LP-RR"]
    assert case["possible_duplicates"] == []
    head, child = case["members"]
    assert head["documents"] == [{"type": "passport", "number": "P1234567"}]
    assert head["date_of_birth"] == "1990-03-04"
    assert head["other_names"] == ["Aminah"]
    assert head["birth_registration"] is None
    assert child["mother"] == head["id"]
    assert child["registration_risk"] == {
        "exposes_parent": True,
        "decision": "defer",
        "reason": "Exposure.",
    }
    assert child["nationality_status"] == "at_risk_of_statelessness"


def test_intake_stores_a_key_blind_indexes_and_one_audit_entry(
    client: FlaskClient, db_session: Session, worker_a: dict[str, str], register: Any
) -> None:
    case = register(
        worker_a,
        household(member(documents=[{"type": "national_id", "number": "N-55 66"}])),
    )
    stored = db_session.scalars(select(Case).where(Case.reference == case["reference"])).one()
    assert db_session.get(CaseKey, stored.id) is not None
    names = db_session.scalars(
        select(BlindIndexEntry.name).where(BlindIndexEntry.case_id == stored.id)
    ).all()
    assert sorted(names) == ["document_number", "name_birth_year", "name_variant", "name_variant"]
    (entry,) = audit_entries(db_session, case["reference"])
    assert entry.action == "case.create"
    assert "members.documents" in entry.fields
    assert "members.full_name" in entry.fields
    assert entry.actor == "worker-a"


def test_a_member_without_birth_year_is_not_indexed_by_name(
    db_session: Session, worker_a: dict[str, str], register: Any
) -> None:
    body = household(member(birth_year=None))
    case = register(worker_a, body)
    stored = db_session.scalars(select(Case).where(Case.reference == case["reference"])).one()
    count = db_session.scalar(
        select(func.count())
        .select_from(BlindIndexEntry)
        .where(BlindIndexEntry.case_id == stored.id)
    )
    assert count == 0


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"members": []}, ["members"]),
        ({"members": [member(relationship="spouse")]}, ["members", "_schema"]),
        ({"members": [member(), member()]}, ["members", "1", "relationship"]),
        ({"members": [member(birth_year=1980, birth_registration="notified")]}, None),
        ({"members": [member(sex="x")]}, ["members", "0", "sex"]),
        ({"members": [member(surname="Extra")]}, ["members", "0", "surname"]),
        ({"members": [member()], "stage": "vetting"}, ["stage"]),
        ({"members": [member(documents=[{"type": "passport", "number": "1", "x": 1}])]}, None),
        ({"members": [member(phone="call me")]}, ["members", "0", "phone"]),
        ({"members": [member()], "specific_needs": ["XX-YY"]}, ["specific_needs"]),
    ],
)
def test_bad_intake_is_422_with_field_messages_and_writes_nothing(
    client: FlaskClient,
    db_session: Session,
    worker_a: dict[str, str],
    body: dict[str, Any],
    location: list[str] | None,
) -> None:
    before = db_session.scalar(select(func.count()).select_from(Case))
    response = client.post(CASES, json=body, headers=worker_a)
    assert response.status_code == 422
    problem = response.get_json()
    assert problem["type"].endswith("validation-failed")
    errors = problem["errors"]["json"]
    for key in location or []:
        errors = errors[key]
    assert db_session.scalar(select(func.count()).select_from(Case)) == before


def test_child_fields_are_refused_for_adults(client: FlaskClient, worker_a: dict[str, str]) -> None:
    body = household(member(nationality_status="undetermined"))
    problem = client.post(CASES, json=body, headers=worker_a).get_json()
    assert problem["errors"]["json"]["members"]["0"]["nationality_status"]


def test_error_messages_never_repeat_the_value(
    client: FlaskClient, worker_a: dict[str, str]
) -> None:
    marker = "Qzx9Canary"
    body = household(member(phone=f"{marker}", country_of_origin=marker, full_name=" "))
    response = client.post(CASES, json=body, headers=worker_a)
    assert response.status_code == 422
    assert marker not in response.get_data(as_text=True)


def test_intake_for_another_office_is_refused(
    client: FlaskClient, worker_a: dict[str, str], office_b: str, db_session: Session
) -> None:
    response = client.post(CASES, json=household(office=office_b), headers=worker_a)
    assert response.status_code == 403
    assert [e.action for e in audit_entries(db_session)][-1] == "authz.denied"


def test_intake_needs_an_existing_office_and_an_office_at_all(
    client: FlaskClient, as_role: Any, offices: Any
) -> None:
    ghost = as_role("caseworker", "ghost-9")
    assert client.post(CASES, json=household(), headers=ghost).status_code == 422
    nowhere = as_role("caseworker", None)
    assert client.post(CASES, json=household(), headers=nowhere).status_code == 403


@pytest.mark.parametrize("role", ["admin", "auditor"])
def test_officeless_roles_cannot_register(client: FlaskClient, as_role: Any, role: str) -> None:
    assert client.post(CASES, json=household(), headers=as_role(role)).status_code == 403


def test_intake_without_authentication_is_401(client: FlaskClient) -> None:
    assert client.post(CASES, json=household()).status_code == 401


# --- property: no generated body causes a 500 ---------------------------------------------

_text = st.one_of(st.text(max_size=30), st.just(""), st.just(" "), st.integers(), st.none())
_enumish = st.sampled_from(["female", "male", "child", "spouse", "principal_applicant", "zz", ""])
_member = st.fixed_dictionaries(
    {
        "relationship": st.one_of(st.just("principal_applicant"), _enumish),
        "sex": _enumish,
        "full_name": _text,
    },
    optional={
        "birth_year": st.one_of(st.integers(1850, 2100), st.text(max_size=4), st.none()),
        "date_of_birth": st.one_of(st.dates().map(str), st.text(max_size=12), st.none()),
        "country_of_origin": st.one_of(st.sampled_from(["SYR", "XXA", "syr", "ZZZ"]), _text),
        "documents": st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["passport", "other", "bad"]), "number": _text}
            ),
            max_size=3,
        ),
        "phone": _text,
        "narrative": _text,
        "mother": st.one_of(st.integers(-2, 4), st.none(), st.text(max_size=2)),
        "birth_registration": st.one_of(st.sampled_from(["notified", "unknown", "no"]), st.none()),
        "registration_risk": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {
                    "exposes_parent": st.one_of(st.booleans(), st.integers()),
                    "decision": st.sampled_from(["defer", "register_now", "maybe"]),
                    "reason": _text,
                }
            ),
        ),
        "other_names": st.one_of(st.lists(_text, max_size=3), _text),
    },
)
_body = st.one_of(
    st.fixed_dictionaries(
        {"members": st.lists(_member, max_size=4)},
        optional={"specific_needs": st.lists(st.sampled_from(["SC-UC", "SV-VA", "ZZ"]))},
    ),
    st.dictionaries(st.text(max_size=8), _text, max_size=3),
    st.lists(st.integers(), max_size=2),
    st.none(),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=_body)
def test_generated_intake_bodies_never_cause_a_500(
    client: FlaskClient, worker_a: dict[str, str], body: Any
) -> None:
    response = client.post(CASES, json=body, headers=worker_a)
    assert response.status_code in (201, 400, 422), response.get_json()
