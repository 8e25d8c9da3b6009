"""Vetting interviews: schedule, record, change; members of the case; sealed at rest."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from casework.cases.codes import Stage
from casework.vetting import service
from casework.vetting.models import VettingCheck, VettingInterview
from tests.conftest import erase_by_two_people, stored_ciphertexts
from tests.vetting.conftest import (
    CANARY,
    audit_entries,
    audit_fields,
    interviews_url,
    to_stage,
)

SOON = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).isoformat()
TODAY = date.today().isoformat()


def members_of(case: dict[str, Any]) -> list[str]:
    return [m["id"] for m in case["members"]]


def schedule(
    client: FlaskClient, case: dict[str, Any], headers: dict[str, str], **body: Any
) -> Any:
    payload = {"members": members_of(case)[:1], "scheduled_for": SOON, **body}
    return client.post(interviews_url(case["reference"]), json=payload, headers=headers)


def test_schedule_then_record_with_if_match(
    client: FlaskClient, vetting_case: Any, officer_a: dict[str, str], officer_a2: dict[str, str]
) -> None:
    case = vetting_case()
    created = schedule(client, case, officer_a, interpreter_used=True, interpreter_language="ar")
    assert created.status_code == 201, created.get_json()
    assert created.headers["ETag"] == '"v2"'  # the case's version moved
    body = created.get_json()
    assert body["status"] == "scheduled"
    assert body["interviewer"] == "officer-a"  # the caller by default
    assert body["recorded_by"] is None
    assert body["members"] == members_of(case)[:1]
    assert body["interpreter_used"] is True
    assert body["interpreter_language"] == "ar"

    url = f"{interviews_url(case['reference'])}/{body['id']}"
    change = {"conducted_on": TODAY, "notes": "Consistent account."}
    assert client.patch(url, json=change, headers=officer_a2).status_code == 428
    stale = client.patch(url, json=change, headers={**officer_a2, "If-Match": '"v1"'})
    assert stale.status_code == 412
    recorded = client.patch(url, json=change, headers={**officer_a2, "If-Match": '"v2"'})
    assert recorded.status_code == 200, recorded.get_json()
    assert recorded.headers["ETag"] == '"v3"'
    answer = recorded.get_json()
    assert answer["status"] == "recorded"
    assert answer["recorded_by"] == "officer-a2"
    assert answer["conducted_on"] == TODAY
    assert answer["notes"] == "Consistent account."

    listed = client.get(interviews_url(case["reference"]), headers=officer_a)
    assert listed.status_code == 200
    assert listed.headers["ETag"] == '"v3"'
    assert [i["id"] for i in listed.get_json()["items"]] == [body["id"]]


def test_recording_at_once_makes_the_caller_its_recorder(
    client: FlaskClient, vetting_case: Any, officer_a: dict[str, str]
) -> None:
    case = vetting_case()
    response = client.post(
        interviews_url(case["reference"]),
        json={"members": members_of(case), "conducted_on": TODAY},
        headers=officer_a,
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["status"] == "recorded"
    assert body["recorded_by"] == "officer-a"
    assert body["scheduled_for"] is None
    assert sorted(body["members"]) == sorted(members_of(case))


def test_members_must_belong_to_the_case(
    client: FlaskClient, vetting_case: Any, officer_a: dict[str, str]
) -> None:
    case, other = vetting_case(), vetting_case()
    stranger = members_of(other)[0]
    response = client.post(
        interviews_url(case["reference"]),
        json={"members": [members_of(case)[0], stranger], "scheduled_for": SOON},
        headers=officer_a,
    )
    assert response.status_code == 422
    assert response.get_json()["errors"]["json"]["members"] == {
        "1": ["No such member in this case."]
    }
    created = schedule(client, case, officer_a).get_json()
    url = f"{interviews_url(case['reference'])}/{created['id']}"
    patched = client.patch(
        url, json={"members": [stranger]}, headers={**officer_a, "If-Match": '"v2"'}
    )
    assert patched.status_code == 422


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"interpreter_used": True}, "interpreter_language"),
        ({"interpreter_language": "ar"}, "interpreter_language"),
        ({"interpreter_language": "not a tag"}, "interpreter_language"),
        ({"scheduled_for": None}, "scheduled_for"),
        ({"conducted_on": (date.today() + timedelta(days=3)).isoformat()}, "conducted_on"),
        ({"scheduled_for": "2030-01-01T10:00:00"}, "scheduled_for"),  # no time zone
        ({"members": []}, "members"),
        ({"notes": "   "}, "notes"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_invalid_interviews_are_refused(
    client: FlaskClient,
    vetting_case: Any,
    officer_a: dict[str, str],
    body: dict[str, Any],
    field: str,
) -> None:
    case = vetting_case()
    response = schedule(client, case, officer_a, **body)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]["json"]


def test_repeated_members_are_refused(
    client: FlaskClient, vetting_case: Any, officer_a: dict[str, str]
) -> None:
    case = vetting_case()
    first = members_of(case)[0]
    response = schedule(client, case, officer_a, members=[first, first])
    assert response.status_code == 422


def test_turning_the_interpreter_off_clears_the_language(
    client: FlaskClient, vetting_case: Any, officer_a: dict[str, str]
) -> None:
    case = vetting_case()
    created = schedule(client, case, officer_a, interpreter_used=True, interpreter_language="ps")
    url = f"{interviews_url(case['reference'])}/{created.get_json()['id']}"
    headers = {**officer_a, "If-Match": created.headers["ETag"]}
    answer = client.patch(url, json={"interpreter_used": False}, headers=headers).get_json()
    assert answer["interpreter_used"] is False
    assert answer["interpreter_language"] is None


def test_an_unchanged_patch_keeps_the_version(
    client: FlaskClient, vetting_case: Any, officer_a: dict[str, str]
) -> None:
    case = vetting_case()
    created = schedule(client, case, officer_a, notes="Same")
    url = f"{interviews_url(case['reference'])}/{created.get_json()['id']}"
    headers = {**officer_a, "If-Match": created.headers["ETag"]}
    response = client.patch(url, json={"notes": "Same"}, headers=headers)
    assert response.status_code == 200
    assert response.headers["ETag"] == created.headers["ETag"]


def test_interviewer_is_a_vetting_officer_of_the_office(
    client: FlaskClient,
    vetting_case: Any,
    officer_a: dict[str, str],
    make_user: Any,
    office_a: str,
    office_b: str,
) -> None:
    case = vetting_case()
    colleague = make_user("vetting_officer", office_a, mfa=False)
    response = schedule(client, case, officer_a, interviewer=str(colleague.id))
    assert response.status_code == 201
    assert response.get_json()["interviewer"] == str(colleague.id)

    refused = [
        make_user("caseworker", office_a, mfa=False).id,  # may not conduct vetting
        make_user("vetting_officer", office_b, mfa=False).id,  # another office
        make_user("vetting_officer", office_a, mfa=False, active=False).id,  # disabled
        uuid.uuid4(),  # nobody
    ]
    for user_id in refused:
        answer = schedule(client, case, officer_a, interviewer=str(user_id))
        assert answer.status_code == 422, user_id
        assert "interviewer" in answer.get_json()["errors"]["json"]


def test_a_recorded_interview_keeps_its_interviewer_and_its_authors(
    client: FlaskClient,
    db_session: Session,
    vetting_case: Any,
    officer_a: dict[str, str],
    supervisor_a: dict[str, str],
    make_user: Any,
    office_a: str,
) -> None:
    case = vetting_case()
    created = schedule(client, case, officer_a, conducted_on=TODAY)
    url = f"{interviews_url(case['reference'])}/{created.get_json()['id']}"
    colleague = make_user("vetting_officer", office_a, mfa=False)
    moved = client.patch(
        url,
        json={"interviewer": str(colleague.id)},
        headers={**officer_a, "If-Match": created.headers["ETag"]},
    )
    assert moved.status_code == 422
    assert moved.get_json()["errors"]["json"]["interviewer"]
    # A decider may not rewrite an interview they did not conduct or record.
    rewritten = client.patch(
        url,
        json={"notes": "Rewritten"},
        headers={**supervisor_a, "If-Match": created.headers["ETag"]},
    )
    assert rewritten.status_code == 403
    assert audit_entries(db_session, case["reference"], "authz.denied")


def test_interviews_need_the_vetting_stage(
    client: FlaskClient, db_session: Session, vetting_case: Any, officer_a: dict[str, str]
) -> None:
    case = vetting_case()
    created = schedule(client, case, officer_a)
    to_stage(db_session, case["reference"], Stage.DETERMINATION)
    refused = schedule(client, case, officer_a)
    assert refused.status_code == 409
    assert refused.get_json()["type"] == "urn:casework:problem:case-not-in-vetting"
    url = f"{interviews_url(case['reference'])}/{created.get_json()['id']}"
    patched = client.patch(
        url, json={"notes": "x"}, headers={**officer_a, "If-Match": created.headers["ETag"]}
    )
    assert patched.status_code == 409
    assert client.get(interviews_url(case["reference"]), headers=officer_a).status_code == 200


def test_intake_stage_case_is_refused(
    client: FlaskClient, register: Any, worker_a: dict[str, str], officer_a: dict[str, str]
) -> None:
    case = register(worker_a)
    assert schedule(client, case, officer_a).status_code == 409


def test_too_many_interviews(
    client: FlaskClient,
    vetting_case: Any,
    officer_a: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "MAX_INTERVIEWS", 1)
    case = vetting_case()
    assert schedule(client, case, officer_a).status_code == 201
    refused = schedule(client, case, officer_a)
    assert refused.status_code == 409
    assert refused.get_json()["type"] == "urn:casework:problem:too-many-interviews"


def test_access_scope_and_permissions(
    client: FlaskClient,
    vetting_case: Any,
    officer_a: dict[str, str],
    officer_b: dict[str, str],
    worker_a: dict[str, str],
    db_session: Session,
) -> None:
    case = vetting_case()
    created = schedule(client, case, officer_a).get_json()
    url = f"{interviews_url(case['reference'])}/{created['id']}"
    v2 = {"If-Match": '"v2"'}
    # Another office: 404, as for a missing case, and the refusal is recorded.
    assert client.get(interviews_url(case["reference"]), headers=officer_b).status_code == 404
    assert schedule(client, case, officer_b).status_code == 404
    assert client.patch(url, json={"notes": "x"}, headers={**officer_b, **v2}).status_code == 404
    assert audit_entries(db_session, case["reference"], "authz.denied")
    # A caseworker may read the case but not its interviews.
    assert client.get(interviews_url(case["reference"]), headers=worker_a).status_code == 403
    assert schedule(client, case, worker_a).status_code == 403
    # An interview of another case, or none at all, is not found.
    other = vetting_case()
    elsewhere = f"{interviews_url(other['reference'])}/{created['id']}"
    v1 = {"If-Match": '"v1"'}
    assert (
        client.patch(elsewhere, json={"notes": "x"}, headers={**officer_a, **v1}).status_code == 404
    )
    nowhere = f"{interviews_url(case['reference'])}/{uuid.uuid4()}"
    assert (
        client.patch(nowhere, json={"notes": "x"}, headers={**officer_a, **v2}).status_code == 404
    )


def test_every_access_is_audited_by_field_name(
    client: FlaskClient, db_session: Session, vetting_case: Any, officer_a: dict[str, str]
) -> None:
    case = vetting_case()
    created = schedule(client, case, officer_a, notes=CANARY)
    client.get(interviews_url(case["reference"]), headers=officer_a)
    updates = audit_entries(db_session, case["reference"], "case.update")
    assert audit_fields(updates[-1]) == [
        "vetting.interviews.interpreter_used",
        "vetting.interviews.interviewer",
        "vetting.interviews.members",
        "vetting.interviews.notes",
        "vetting.interviews.scheduled_for",
    ]
    reads = audit_entries(db_session, case["reference"], "case.read")
    assert "vetting.interviews.notes" in audit_fields(reads[-1])
    assert created.status_code == 201
    for entry in audit_entries(db_session, case["reference"]):
        assert CANARY not in (entry.fields or "")


def test_interview_data_is_sealed_at_rest(
    client: FlaskClient, db_session: Session, vetting_case: Any, officer_a: dict[str, str]
) -> None:
    case = vetting_case()
    member_id = members_of(case)[0]
    schedule(
        client, case, officer_a, notes=CANARY, interpreter_used=True, interpreter_language="ku"
    )
    rows = db_session.execute(text("SELECT * FROM vetting_interviews")).all()
    assert rows
    raw = b"".join(
        value if isinstance(value, bytes) else str(value).encode() for row in rows for value in row
    )
    for secret in (CANARY, member_id, member_id.replace("-", ""), SOON[:10], '"ku"'):
        assert secret.encode() not in raw
    stored = db_session.scalars(select(VettingInterview)).one()
    assert stored.interviewer_id == "officer-a"  # the one plaintext person, for four-eyes


def test_erasure_overwrites_interviews_and_checks(
    client: FlaskClient,
    db_session: Session,
    vetting_case: Any,
    officer_a: dict[str, str],
    supervisor_a: dict[str, str],
) -> None:
    case = vetting_case()
    reference = case["reference"]
    assert schedule(client, case, officer_a, notes=CANARY).status_code == 201
    check = client.put(
        f"{interviews_url(reference).rsplit('/', 1)[0]}/checks/security_screening",
        json={"status": "cleared", "findings": CANARY},
        headers={**officer_a, "If-Match": '"v2"'},
    )
    assert check.status_code == 200, check.get_json()
    assert all(stored_ciphertexts(db_session, VettingInterview))
    assert all(stored_ciphertexts(db_session, VettingCheck))

    second = {**supervisor_a, "X-Test-Principal": supervisor_a["X-Test-Principal"] + "-second"}
    erased = erase_by_two_people(client, reference, supervisor_a, second)
    assert erased.status_code == 200, erased.get_json()
    db_session.expire_all()
    assert set(stored_ciphertexts(db_session, VettingInterview)) == {None}
    assert set(stored_ciphertexts(db_session, VettingCheck)) == {None}
    assert client.get(interviews_url(reference), headers=officer_a).status_code == 410
