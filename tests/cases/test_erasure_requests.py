"""Erasure needs two people: request, approve or reject, expiry, scope, and the log."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.cases.models import Case, ErasureRequest
from tests.cases.conftest import CASES, audit_entries, household, member

REQUESTS = "/api/v1/erasure-requests"
REASON = "Canary-reason-7Q: the person withdrew and asked to be forgotten."


@pytest.fixture
def sup1(as_role: Any, office_a: str) -> dict[str, str]:
    headers: dict[str, str] = as_role("supervisor", office_a, "sup-1")
    return headers


@pytest.fixture
def sup2(as_role: Any, office_a: str) -> dict[str, str]:
    headers: dict[str, str] = as_role("supervisor", office_a, "sup-2")
    return headers


@pytest.fixture
def sup_b(as_role: Any, office_b: str) -> dict[str, str]:
    headers: dict[str, str] = as_role("supervisor", office_b, "sup-b")
    return headers


@pytest.fixture
def ref(worker_a: dict[str, str], register: Any) -> str:
    created: dict[str, Any] = register(worker_a, household(member(full_name="Kept Or Not")))
    reference: str = created["reference"]
    return reference


def ask(client: FlaskClient, headers: dict[str, str], reference: str) -> Any:
    return client.post(
        f"{CASES}/{reference}/erasure-requests", json={"reason": REASON}, headers=headers
    )


def decide(client: FlaskClient, headers: dict[str, str], made: Any, verb: str) -> Any:
    return client.post(
        f"{REQUESTS}/{made.get_json()['id']}/{verb}",
        headers={**headers, "If-Match": made.headers["ETag"]},
    )


def test_a_request_is_pending_with_its_etag_and_sealed_reason(
    client: FlaskClient, db_session: Session, sup1: dict[str, str], ref: str
) -> None:
    made = ask(client, sup1, ref)
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert set(body) >= {"id", "reference", "status", "requested_by", "expires_at", "version"}
    assert (body["reference"], body["status"], body["requested_by"]) == (ref, "pending", "sup-1")
    assert body["version"] == 1
    assert made.headers["ETag"] == '"v1"'
    assert body["reason"] is None  # never echoed in the creation answer
    table = ErasureRequest.__table__
    (stored,) = db_session.execute(select(table.c.reason)).scalars()
    assert stored
    assert REASON.encode() not in stored
    assert b"Canary" not in stored
    one = client.get(f"{REQUESTS}/{body['id']}", headers=sup1)
    assert one.status_code == 200
    assert one.headers["ETag"] == '"v1"'
    assert one.get_json()["reason"] == REASON
    listed = client.get(REQUESTS, headers=sup1).get_json()["items"]
    assert [item["id"] for item in listed] == [body["id"]]
    assert listed[0]["reason"] is None


def test_the_requester_cannot_approve_or_reject_their_own_request(
    client: FlaskClient, sup1: dict[str, str], worker_a: dict[str, str], ref: str
) -> None:
    made = ask(client, sup1, ref)
    for verb in ("approve", "reject"):
        refused = decide(client, sup1, made, verb)
        assert refused.status_code == 409
        assert refused.get_json()["type"] == "urn:casework:problem:four-eyes-required"
    assert client.get(f"{CASES}/{ref}", headers=worker_a).status_code == 200


def test_approval_by_another_supervisor_erases_and_closes_the_request(
    client: FlaskClient,
    db_session: Session,
    sup1: dict[str, str],
    sup2: dict[str, str],
    worker_a: dict[str, str],
    ref: str,
) -> None:
    made = ask(client, sup1, ref)
    other = ask(client, sup2, ref)  # a second request for the same case
    approved = decide(client, sup2, made, "approve")
    assert approved.status_code == 200, approved.get_json()
    assert approved.get_json()["status"] == "approved"
    assert approved.get_json()["decided_by"] == "sup-2"
    assert approved.headers["ETag"] == '"v2"'
    assert client.get(f"{CASES}/{ref}", headers=worker_a).status_code == 410
    again = decide(client, sup2, made, "approve")
    assert again.status_code == 412  # its version moved on
    closed = client.post(
        f"{REQUESTS}/{made.get_json()['id']}/reject", headers={**sup2, "If-Match": '"v2"'}
    )
    assert closed.status_code == 409
    assert closed.get_json()["type"] == "urn:casework:problem:request-closed"
    second = client.get(f"{REQUESTS}/{other.get_json()['id']}", headers=sup1).get_json()
    assert second["status"] == "cancelled"
    assert second["reason"] is None
    table = ErasureRequest.__table__
    assert set(db_session.execute(select(table.c.reason)).scalars()) == {None}
    actions = [(e.action, e.actor) for e in audit_entries(db_session, ref)]
    assert ("erasure.request", "sup-1") in actions
    assert ("erasure.approve", "sup-2") in actions
    assert ("case.shred", "sup-2") in actions
    for entry in audit_entries(db_session, ref):
        assert "Canary" not in (entry.fields or "")
        assert "Canary" not in (entry.target or "")


def test_rejection_keeps_the_case_and_closes_the_request(
    client: FlaskClient,
    db_session: Session,
    sup1: dict[str, str],
    sup2: dict[str, str],
    worker_a: dict[str, str],
    ref: str,
) -> None:
    made = ask(client, sup1, ref)
    rejected = decide(client, sup2, made, "reject")
    assert rejected.status_code == 200
    assert rejected.get_json()["status"] == "rejected"
    assert client.get(f"{CASES}/{ref}", headers=worker_a).status_code == 200
    late = client.post(
        f"{REQUESTS}/{made.get_json()['id']}/approve", headers={**sup2, "If-Match": '"v2"'}
    )
    assert late.status_code == 409
    assert late.get_json()["type"] == "urn:casework:problem:request-closed"
    (entry,) = audit_entries(db_session, ref, "erasure.reject")
    assert entry.actor == "sup-2"
    assert json.loads(entry.fields) == []


def test_a_pending_request_expires(
    app: Flask,
    client: FlaskClient,
    db_session: Session,
    sup1: dict[str, str],
    sup2: dict[str, str],
    worker_a: dict[str, str],
    ref: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(app.config["CASEWORK"], "erasure_request_days", 3)
    made = ask(client, sup1, ref)
    request = db_session.get_one(ErasureRequest, uuid.UUID(made.get_json()["id"]))
    assert request.expires_at - request.requested_at == timedelta(days=3)
    request.expires_at = request.requested_at - timedelta(seconds=1)
    db_session.flush()
    shown = client.get(f"{REQUESTS}/{made.get_json()['id']}", headers=sup2).get_json()
    assert shown["status"] == "expired"
    late = decide(client, sup2, made, "approve")
    assert late.status_code == 409
    assert late.get_json()["type"] == "urn:casework:problem:request-closed"
    assert client.get(f"{CASES}/{ref}", headers=worker_a).status_code == 200


def test_other_offices_see_nothing(
    client: FlaskClient,
    sup1: dict[str, str],
    sup_b: dict[str, str],
    db_session: Session,
    ref: str,
) -> None:
    assert ask(client, sup_b, ref).status_code == 404
    made = ask(client, sup1, ref)
    request_id = made.get_json()["id"]
    assert client.get(f"{REQUESTS}/{request_id}", headers=sup_b).status_code == 404
    assert decide(client, sup_b, made, "approve").status_code == 404
    assert client.get(REQUESTS, headers=sup_b).get_json()["items"] == []
    case = db_session.scalars(select(Case).where(Case.reference == ref)).one()
    assert case.erased_at is None


def test_the_default_expiry_is_fourteen_days(app: Flask) -> None:
    from casework import config

    assert config.load({})["erasure_request_days"] == 14
