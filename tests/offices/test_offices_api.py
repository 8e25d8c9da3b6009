"""The offices API (administrators)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.audit.models import AuditEntry

OFFICES = "/api/v1/offices"


@pytest.fixture
def admin(make_user: Any, login_headers: Any) -> dict[str, str]:
    headers: dict[str, str] = login_headers(make_user("admin"))
    return headers


def _create(client: FlaskClient, headers: dict[str, str], **body: Any) -> Any:
    payload = {"code": "goma", "name": "Goma field office", "country_code": "COD", **body}
    return client.post(OFFICES, json=payload, headers=headers)


def test_create_read_list(client: FlaskClient, db_session: Session, admin: dict[str, str]) -> None:
    created = _create(client, admin)
    assert created.status_code == 201
    body = created.get_json()
    assert {k: body[k] for k in ("code", "name", "country_code", "active", "version")} == {
        "code": "goma",
        "name": "Goma field office",
        "country_code": "COD",
        "active": True,
        "version": 1,
    }
    assert created.headers["ETag"] == '"v1"'
    one = client.get(f"{OFFICES}/goma", headers=admin)
    assert one.status_code == 200
    assert one.get_json()["code"] == "goma"
    listed = client.get(OFFICES, headers=admin).get_json()
    assert "goma" in [o["code"] for o in listed["items"]]
    actions = db_session.scalars(select(AuditEntry.action).where(AuditEntry.target == "goma")).all()
    assert actions == ["office.create"]


def test_create_inactive(client: FlaskClient, admin: dict[str, str]) -> None:
    assert _create(client, admin, active=False).get_json()["active"] is False


@pytest.mark.parametrize(
    "body",
    [
        {"code": "Goma"},
        {"code": "g"},
        {"code": "goma;x"},
        {"country_code": "CD"},
        {"country_code": "cod"},
        {"name": ""},
        {"name": "   "},
        {"name": "a\nb"},
        # The one required non-space character must not be a control either (the
        # fuzzer found NUL there: PostgreSQL refuses it in text, SQLite stored it).
        {"name": "\x00"},
        {"name": "\x00Goma"},
        {"name": "Goma\x7f"},
        {"name": "x" * 201},
        {"region": "east"},
    ],
)
def test_invalid_offices_are_422(
    client: FlaskClient, admin: dict[str, str], body: dict[str, Any]
) -> None:
    assert _create(client, admin, **body).status_code == 422


def test_duplicate_code_is_409(client: FlaskClient, admin: dict[str, str]) -> None:
    assert _create(client, admin).status_code == 201
    assert _create(client, admin, name="Other").status_code == 409


def test_patch(client: FlaskClient, db_session: Session, admin: dict[str, str]) -> None:
    _create(client, admin)
    url = f"{OFFICES}/goma"
    v1, v2 = {**admin, "If-Match": '"v1"'}, {**admin, "If-Match": '"v2"'}
    assert client.patch(url, json={"name": "Goma"}, headers=admin).status_code == 428
    renamed = client.patch(url, json={"name": "Goma"}, headers=v1)
    assert renamed.status_code == 200
    assert renamed.get_json()["name"] == "Goma"
    assert renamed.headers["ETag"] == '"v2"'
    assert client.patch(url, json={"active": False}, headers=v1).status_code == 412
    assert client.patch(url, json={"code": "x"}, headers=v2).status_code == 422
    assert client.patch(f"{OFFICES}/none", json={}, headers=v1).status_code == 404
    entry = db_session.scalars(select(AuditEntry).where(AuditEntry.action == "office.update")).one()
    assert entry.fields == '["name"]'


def test_list_pagination(client: FlaskClient, admin: dict[str, str]) -> None:
    for code in ("zz-c", "zz-a", "zz-b"):
        _create(client, admin, code=code)
    first = client.get(OFFICES, query_string={"limit": 1}, headers=admin).get_json()
    assert len(first["items"]) == 1
    assert first["next_cursor"]
