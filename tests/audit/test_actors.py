"""Auditors can answer "who": actor ids resolve to username, role and office, and
``actor=`` takes a username; every look-up is itself in the log."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.audit.models import AuditEntry
from tests.conftest import principal_headers

ACTORS = "/api/v1/audit/actors"
AUDITOR = principal_headers("auditor")


def test_an_auditor_resolves_a_user_by_id_and_by_username(
    client: FlaskClient, db_session: Session, make_office: Any, make_user: Any
) -> None:
    office = make_office("act")
    user = make_user("caseworker", office, username="amina")
    by_id = client.get(f"{ACTORS}/{user.id}", headers=AUDITOR)
    assert by_id.status_code == 200
    expected = {
        "id": str(user.id),
        "kind": "user",
        "username": "amina",
        "role": "caseworker",
        "office": office,
        "active": True,
    }
    assert by_id.get_json() == expected
    assert client.get(f"{ACTORS}/amina", headers=AUDITOR).get_json() == expected
    looked_up = db_session.scalars(
        select(AuditEntry).where(AuditEntry.target == f"actor:{user.id}")
    ).all()
    assert [(e.action, json.loads(e.fields)) for e in looked_up] == [("audit.read", ["actor"])] * 2


def test_unknown_actors_are_404(client: FlaskClient) -> None:
    for key in ("nobody", "00000000-0000-4000-8000-000000000000"):
        assert client.get(f"{ACTORS}/{key}", headers=AUDITOR).status_code == 404


def test_only_audit_read_may_resolve(client: FlaskClient, make_user: Any) -> None:
    user = make_user("admin")
    for role, office in (("admin", None), ("caseworker", "act"), ("supervisor", "act")):
        headers = principal_headers(role, office)
        assert client.get(f"{ACTORS}/{user.id}", headers=headers).status_code == 403
    assert client.get(f"{ACTORS}/{user.id}").status_code == 401


def test_events_filter_by_username(client: FlaskClient, make_user: Any) -> None:
    user = make_user("auditor", username="bashir", mfa=False)
    own = principal_headers("auditor", None, user_id=str(user.id))
    assert client.get("/api/v1/audit/events", headers=own).status_code == 200  # by bashir
    by_name = client.get("/api/v1/audit/events?actor=bashir", headers=AUDITOR).get_json()
    by_id = client.get(f"/api/v1/audit/events?actor={user.id}", headers=AUDITOR).get_json()
    assert by_name["items"]
    assert by_name["items"] == by_id["items"]
    assert {item["actor"] for item in by_name["items"]} == {str(user.id)}
