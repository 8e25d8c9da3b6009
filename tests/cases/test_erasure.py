"""Erasure by two people (request, then approval by another supervisor): crypto-shredding,
and what is left afterwards."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casework.cases.erasure import registered_hooks
from casework.cases.models import BlindIndexEntry, Case, CaseMember, DuplicateAlert
from casework.cases.service import erase_case
from casework.security.app import holder
from casework.security.case_keys import data_key_cache
from casework.security.errors import MissingDataKeyError
from casework.security.models import CaseKey
from tests.cases.conftest import CASES, audit_entries, household, member, unique


@pytest.fixture
def supervisor_a(as_role: Any, office_a: str) -> dict[str, str]:
    headers: dict[str, str] = as_role("supervisor", office_a, "sup-a")
    return headers


@pytest.fixture
def doomed(
    client: FlaskClient, worker_a: dict[str, str], worker_b: dict[str, str], register: Any
) -> dict[str, Any]:
    number = unique("ERASE")
    doc = [{"type": "passport", "number": number}]
    register(worker_b, household(member(documents=doc)))  # so an alert links the two
    created: dict[str, Any] = register(
        worker_a,
        household(
            member(documents=doc, narrative="To be forgotten", full_name="Erased Person"),
            member(relationship="child", birth_year=2019, full_name="Erased Child", mother=0),
            specific_needs=["SV-VA"],
        ),
    )
    created["number"] = number
    integrity = {"X-Test-Principal": "integrity_officer;;integrity-1"}
    assert client.get("/api/v1/alerts", headers=integrity).status_code == 200  # raises the alert
    return created


@pytest.fixture
def second_a(as_role: Any, office_a: str) -> dict[str, str]:
    headers: dict[str, str] = as_role("supervisor", office_a, "sup-a2")
    return headers


REQUESTS = "/api/v1/erasure-requests"


def ask(client: FlaskClient, headers: dict[str, str], ref: str, reason: str = "Asked") -> Any:
    return client.post(f"{CASES}/{ref}/erasure-requests", json={"reason": reason}, headers=headers)


def decide(
    client: FlaskClient, headers: dict[str, str], request_id: str, verb: str, etag: str = '"v1"'
) -> Any:
    return client.post(f"{REQUESTS}/{request_id}/{verb}", headers={**headers, "If-Match": etag})


def erase(
    client: FlaskClient, requester: dict[str, str], approver: dict[str, str], ref: str
) -> Any:
    """Request as ``requester``, approve as ``approver``: the approval's response."""
    made = ask(client, requester, ref)
    if made.status_code != 201:
        return made
    return decide(client, approver, made.get_json()["id"], "approve", made.headers["ETag"])


def test_delete_is_gone_erasure_needs_the_permission_and_if_match(
    client: FlaskClient,
    worker_a: dict[str, str],
    supervisor_a: dict[str, str],
    second_a: dict[str, str],
    doomed: dict[str, Any],
) -> None:
    ref = doomed["reference"]
    deleted = client.delete(f"{CASES}/{ref}", headers={**supervisor_a, "If-Match": '"v1"'})
    assert deleted.status_code == 405
    assert ask(client, worker_a, ref).status_code == 403
    made = ask(client, supervisor_a, ref)
    request_id = made.get_json()["id"]
    assert decide(client, worker_a, request_id, "approve").status_code == 403
    no_match = client.post(f"{REQUESTS}/{request_id}/approve", headers=second_a)
    assert no_match.status_code == 428
    assert decide(client, second_a, request_id, "approve", '"v9"').status_code == 412
    assert client.get(f"{CASES}/{ref}", headers=worker_a).status_code == 200


def test_erasure_destroys_key_indexes_alerts_and_ciphertext(
    app: Flask,
    client: FlaskClient,
    db_session: Session,
    keyed_session: Session,
    worker_a: dict[str, str],
    supervisor_a: dict[str, str],
    second_a: dict[str, str],
    doomed: dict[str, Any],
) -> None:
    ref = doomed["reference"]
    case = db_session.scalars(select(Case).where(Case.reference == ref)).one()
    case_id = case.id
    member_ids = [m.id for m in case.members]
    blobs = db_session.execute(
        select(CaseMember.id, CaseMember._full_name_ciphertext).where(  # type: ignore[attr-defined]
            CaseMember.case_id == case_id
        )
    ).all()
    assert db_session.scalar(select(func.count()).select_from(DuplicateAlert)) == 1
    db_session.expunge_all()

    assert erase(client, supervisor_a, second_a, ref).status_code == 200

    assert db_session.get(CaseKey, case_id) is None
    count = (
        select(func.count()).select_from(BlindIndexEntry).where(BlindIndexEntry.case_id == case_id)
    )
    assert db_session.scalar(count) == 0
    assert db_session.scalar(select(func.count()).select_from(DuplicateAlert)) == 0
    members = select(func.count()).select_from(CaseMember).where(CaseMember.case_id == case_id)
    assert db_session.scalar(members) == 0
    tombstone = db_session.get_one(Case, case_id)
    assert tombstone.erased_at is not None
    assert tombstone.version == 2
    table = Case.__table__
    needs = db_session.execute(select(table.c.specific_needs).where(table.c.id == case_id))
    assert needs.scalar_one() is None

    # Ciphertext copied before the erasure (a backup, a replica) cannot be opened:
    # the keyring is intact, but the case's data key is gone.
    with pytest.raises(MissingDataKeyError):
        data_key_cache(keyed_session).get(case_id)
    assert holder(app).get() is data_key_cache(keyed_session).keyring
    for member_id, blob in blobs:
        assert member_id in member_ids
        assert blob


def test_an_erased_case_answers_410_but_keeps_its_history(
    client: FlaskClient,
    db_session: Session,
    worker_a: dict[str, str],
    supervisor_a: dict[str, str],
    second_a: dict[str, str],
    doomed: dict[str, Any],
) -> None:
    ref = doomed["reference"]
    assert erase(client, supervisor_a, second_a, ref).status_code == 200
    url = f"{CASES}/{ref}"
    gone = client.get(url, headers=worker_a)
    assert gone.status_code == 410
    assert gone.get_json()["type"].endswith(":gone")
    assert (
        client.patch(
            url, json={"specific_needs": []}, headers={**worker_a, "If-Match": '"v2"'}
        ).status_code
        == 410
    )
    assert ask(client, supervisor_a, ref).status_code == 410
    assert client.post(f"{url}/duplicates", headers=worker_a).status_code == 410
    assert client.get(CASES, headers=worker_a).get_json()["items"] == []
    found = client.post(
        f"{CASES}/search", json={"document_number": doomed["number"]}, headers=worker_a
    )
    assert found.get_json()["items"] == []
    history = client.get(f"{url}/history", headers=worker_a).get_json()["items"]
    assert [h["action"] for h in history] == [
        "case.create",
        "erasure.request",
        "erasure.approve",
        "case.shred",
    ]
    assert history[1]["actor"] == "sup-a"
    shred = history[-1]
    assert shred["actor"] == "sup-a2"
    assert "members.narrative" in shred["fields"]
    (entry,) = audit_entries(db_session, ref, "case.shred")
    assert "specific_needs" in json.loads(entry.fields)


def test_erasure_outside_a_request_runs_every_registered_hook(
    app: Flask,
    keyed_session: Session,
    doomed: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As a command erases (retention, the CLI): no request, the hooks of create_app."""
    ran: list[str] = []

    def spy(hook: Any) -> Any:
        def recorded(session: Session, case: Case) -> None:
            ran.append(hook.__name__)
            hook(session, case)

        return recorded

    hooks = registered_hooks(app)
    monkeypatch.setitem(app.extensions, "casework.erasure_hooks", [spy(h) for h in hooks])
    case = keyed_session.scalars(select(Case).where(Case.reference == doomed["reference"])).one()
    with app.app_context():
        erase_case(keyed_session, case)
        keyed_session.flush()
    assert ran == [
        "erase_workflow",
        "erase_vetting",
        "erase_handoff_data",
        "erase_sync_data",
        "erase_events",
        "erase_holds",
    ]
    assert case.erased_at is not None
