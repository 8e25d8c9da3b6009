"""GET and PATCH /api/v1/cases/{reference}: reads audited, writes versioned and validated."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.cases import rules
from casework.cases.models import BlindIndexEntry, Case
from casework.cases.reference import format_reference
from tests.cases.conftest import CASES, audit_entries, household, member


@pytest.fixture
def case(worker_a: dict[str, str], register: Any) -> dict[str, Any]:
    body = household(
        member(documents=[{"type": "passport", "number": "PA-100200"}], phone="+1 555 0100"),
        member(relationship="spouse", sex="male", full_name="Sami Spouse", birth_year=1988),
        specific_needs=["LP-RR"],
    )
    created: dict[str, Any] = register(worker_a, body)
    return created


def patch(client: FlaskClient, headers: dict[str, str], ref: str, body: Any, etag: str) -> Any:
    return client.patch(f"{CASES}/{ref}", json=body, headers={**headers, "If-Match": etag})


def test_read_returns_the_case_with_etag_and_one_read_entry(
    client: FlaskClient, db_session: Session, worker_a: dict[str, str], case: dict[str, Any]
) -> None:
    ref = case["reference"]
    response = client.get(f"{CASES}/{ref}", headers=worker_a)
    assert response.status_code == 200
    assert response.headers["ETag"] == '"v1"'
    body = response.get_json()
    assert {k: body[k] for k in ("reference", "office", "version")} == {
        "reference": ref,
        "office": case["office"],
        "version": 1,
    }
    assert body["members"][0]["phone"] == "+1 555 0100"
    (read,) = audit_entries(db_session, ref, "case.read")
    fields = json.loads(read.fields)
    assert {"members.phone", "members.documents", "members.full_name", "specific_needs"} <= set(
        fields
    )
    assert "members.narrative" not in fields  # no value was returned for it
    assert read.target == ref
    assert read.actor == "worker-a"


def test_a_reference_in_display_form_or_lower_case_finds_the_case(
    client: FlaskClient, worker_a: dict[str, str], case: dict[str, Any]
) -> None:
    grouped = format_reference(case["reference"])
    assert client.get(f"{CASES}/{grouped}", headers=worker_a).status_code == 200
    assert client.get(f"{CASES}/{grouped.lower()}", headers=worker_a).status_code == 200


@pytest.mark.parametrize("reference", ["0000000000X", "not-a-ref", "0123456789P"])
def test_unknown_or_malformed_references_are_404(
    client: FlaskClient, worker_a: dict[str, str], reference: str
) -> None:
    assert client.get(f"{CASES}/{reference}", headers=worker_a).status_code == 404


def test_patch_needs_if_match_and_refuses_a_stale_one(
    client: FlaskClient, worker_a: dict[str, str], case: dict[str, Any]
) -> None:
    ref = case["reference"]
    without = client.patch(f"{CASES}/{ref}", json={"specific_needs": []}, headers=worker_a)
    assert without.status_code == 428
    assert patch(client, worker_a, ref, {"specific_needs": []}, '"v7"').status_code == 412


def test_two_editors_with_the_same_etag_one_wins_and_nothing_is_lost(
    client: FlaskClient, worker_a: dict[str, str], case: dict[str, Any]
) -> None:
    ref, head = case["reference"], case["members"][0]["id"]
    first = patch(client, worker_a, ref, {"specific_needs": ["SC-UC"]}, '"v1"')
    second = patch(
        client, worker_a, ref, {"members": {"change": [{"id": head, "phone": "+2 123"}]}}, '"v1"'
    )
    assert (first.status_code, second.status_code) == (200, 412)
    assert first.headers["ETag"] == '"v2"'
    # The loser reads again and re-applies: both changes survive.
    fresh = client.get(f"{CASES}/{ref}", headers=worker_a)
    retry = patch(
        client,
        worker_a,
        ref,
        {"members": {"change": [{"id": head, "phone": "+2 123"}]}},
        fresh.headers["ETag"],
    )
    assert retry.status_code == 200
    final = retry.get_json()
    assert final["specific_needs"] == ["SC-UC"]
    assert final["members"][0]["phone"] == "+2 123"
    assert final["version"] == 3


def test_patch_adds_changes_and_removes_members_with_field_names_audited(
    client: FlaskClient, db_session: Session, worker_a: dict[str, str], case: dict[str, Any]
) -> None:
    ref = case["reference"]
    head, spouse = (m["id"] for m in case["members"])
    body = {
        "members": {
            "add": [
                member(
                    relationship="child",
                    sex="female",
                    birth_year=2019,
                    full_name="New Child",
                    mother=head,
                    birth_registration="notified",
                )
            ],
            "change": [{"id": head, "narrative": "Updated account.", "phone": None}],
            "remove": [spouse],
        }
    }
    response = patch(client, worker_a, ref, body, '"v1"')
    assert response.status_code == 200, response.get_json()
    result = response.get_json()
    assert response.headers["ETag"] == '"v2"'
    assert [m["full_name"] for m in result["members"]][1] == "New Child"
    assert len(result["members"]) == 2
    assert result["members"][0]["phone"] is None
    assert result["members"][0]["narrative"] == "Updated account."
    assert result["members"][1]["mother"] == head
    (update,) = audit_entries(db_session, ref, "case.update")
    fields = set(json.loads(update.fields))
    assert {"members.add", "members.remove", "members.narrative", "members.phone"} <= fields
    assert "members.documents" not in fields
    stored = db_session.scalars(select(Case).where(Case.reference == ref)).one()
    indexed = db_session.scalars(
        select(BlindIndexEntry.member_id).where(BlindIndexEntry.case_id == stored.id)
    ).all()
    assert str(spouse) not in {str(m) for m in indexed}


def test_a_change_to_the_same_values_keeps_the_version(
    client: FlaskClient, worker_a: dict[str, str], case: dict[str, Any]
) -> None:
    response = patch(client, worker_a, case["reference"], {"specific_needs": ["LP-RR"]}, '"v1"')
    assert response.status_code == 200
    assert response.headers["ETag"] == '"v1"'


def test_documents_change_updates_search(
    client: FlaskClient, worker_a: dict[str, str], case: dict[str, Any]
) -> None:
    ref, head = case["reference"], case["members"][0]["id"]
    change = {"id": head, "documents": [{"type": "passport", "number": "NEW-778899"}]}
    assert (
        patch(client, worker_a, ref, {"members": {"change": [change]}}, '"v1"').status_code == 200
    )
    search = f"{CASES}/search"
    old = client.post(search, json={"document_number": "PA100200"}, headers=worker_a)
    new = client.post(search, json={"document_number": "new778899"}, headers=worker_a)
    assert old.get_json()["items"] == []
    assert [c["reference"] for c in new.get_json()["items"]] == [ref]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        # removing the principal applicant leaves none
        (lambda h, s: {"members": {"remove": [h]}}, ["members", "_schema"]),
        # a second principal applicant
        (
            lambda h, s: {
                "members": {"change": [{"id": s, "relationship": "principal_applicant"}]}
            },
            ["members", "change", "0", "relationship"],
        ),
        # children's fields on an adult
        (
            lambda h, s: {"members": {"change": [{"id": s, "birth_registration": "notified"}]}},
            ["members", "change", "0", "birth_registration"],
        ),
        # a mother who is male
        (
            lambda h, s: {
                "members": {
                    "add": [member(relationship="child", birth_year=2020, full_name="C", mother=s)]
                }
            },
            ["members", "add", "0", "mother"],
        ),
        # an unknown member id
        (
            lambda h, s: {
                "members": {
                    "change": [{"id": "00000000-0000-4000-8000-000000000000", "sex": "male"}]
                }
            },
            ["members", "change", "0", "id"],
        ),
        (lambda h, s: {"members": {"remove": [h, h]}}, ["members", "remove", "1"]),
        (lambda h, s: {}, ["_schema"]),
        (lambda h, s: {"stage": "closed"}, ["stage"]),
        (lambda h, s: {"members": {"change": [{"id": h}]}}, ["members", "change", "0"]),
    ],
)
def test_invalid_patches_are_422_and_change_nothing(
    client: FlaskClient, worker_a: dict[str, str], case: dict[str, Any], body: Any, path: list[str]
) -> None:
    ref = case["reference"]
    head, spouse = (m["id"] for m in case["members"])
    response = patch(client, worker_a, ref, body(head, spouse), '"v1"')
    assert response.status_code == 422, response.get_json()
    errors = response.get_json()["errors"]["json"]
    for key in path:
        errors = errors[key]
    assert errors
    after = client.get(f"{CASES}/{ref}", headers=worker_a).get_json()
    assert after["version"] == 1
    assert len(after["members"]) == 2


def test_a_child_who_turned_18_keeps_the_recorded_civil_status(
    client: FlaskClient,
    worker_a: dict[str, str],
    register: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import datetime

    this_year = rules.utc_today().year
    body = household(
        member(birth_year=this_year - 40),
        member(
            relationship="child",
            birth_year=this_year - 17,
            full_name="Grown Child",
            birth_registration="certificate_issued",
        ),
    )
    case = register(worker_a, body)
    later = datetime.date(this_year + 3, 6, 1)
    monkeypatch.setattr(rules, "utc_today", lambda: later)
    response = patch(client, worker_a, case["reference"], {"specific_needs": ["SC-UC"]}, '"v1"')
    assert response.status_code == 200, response.get_json()
    grown = case["members"][1]["id"]
    change = {"members": {"change": [{"id": grown, "nationality_status": "unknown"}]}}
    refused = patch(client, worker_a, case["reference"], change, '"v2"')
    assert refused.status_code == 422


def test_roles_without_write_permission_get_403(
    client: FlaskClient, as_role: Any, office_a: str, case: dict[str, Any]
) -> None:
    for role in ("auditor", "admin"):
        response = patch(client, as_role(role), case["reference"], {"specific_needs": []}, '"v1"')
        assert response.status_code == 403
