"""The administrators' user API: validation, conflicts, versions, pagination."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.audit.models import AuditEntry
from casework.auth.models import User
from tests.auth.helpers import TEST_PASSWORD

USERS = "/api/v1/users"


@pytest.fixture
def admin(make_office: Any, make_user: Any, login_headers: Any) -> dict[str, str]:
    make_office("kbl")
    make_office("isb", country="PAK")
    headers: dict[str, str] = login_headers(make_user("admin", username="root-admin"))
    return headers


def _create(client: FlaskClient, headers: dict[str, str], **body: Any) -> Any:
    payload = {
        "username": "nadia",
        "password": TEST_PASSWORD,
        "role": "caseworker",
        "office": "kbl",
    }
    payload.update(body)
    return client.post(
        USERS, json={k: v for k, v in payload.items() if v is not ...}, headers=headers
    )


def test_create_user(client: FlaskClient, db_session: Session, admin: dict[str, str]) -> None:
    response = _create(client, admin, username="Nadia")
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["ETag"] == '"v1"'
    assert body["username"] == "nadia"
    assert body["office"] == "kbl"
    assert body["active"] is True
    assert body["mfa_enabled"] is False
    assert "password" not in body
    assert "password_hash" not in body
    stored = db_session.get(User, uuid.UUID(body["id"]))
    assert stored is not None
    assert stored.password_hash.startswith("$argon2id$")
    entry = db_session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).one()
    assert (entry.action, entry.target) == ("user.create", body["id"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"office": None}, "office"),  # a caseworker needs an office
        ({"office": ...}, "office"),
        ({"role": "admin"}, "office"),  # an admin has none
        ({"role": "auditor", "office": "isb"}, "office"),
        ({"office": "nowhere"}, "office"),
        ({"role": "device"}, "role"),
        ({"role": "root"}, "role"),
        ({"password": "short"}, "password"),
        ({"password": "password123!"}, "password"),  # common
        ({"password": "nadia-lantern-99"}, "password"),  # contains the username
        ({"password": "x" * 4097}, "password"),
        ({"username": "a"}, "username"),
        ({"username": "has space"}, "username"),
        ({"nickname": "n"}, "nickname"),  # unknown fields are refused
    ],
)
def test_invalid_users_are_422(
    client: FlaskClient, admin: dict[str, str], body: dict[str, Any], field: str
) -> None:
    response = _create(client, admin, **body)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]["json"]


def test_password_policy_reasons_are_all_given(client: FlaskClient, admin: dict[str, str]) -> None:
    response = _create(client, admin, password="nadia")
    messages = response.get_json()["errors"]["json"]["password"]
    assert len(messages) == 2  # too short, contains the username
    assert all("nadia" not in m.replace("username", "") for m in messages)


def test_officeless_roles(client: FlaskClient, admin: dict[str, str]) -> None:
    assert _create(client, admin, username="aud1", role="auditor", office=None).status_code == 201
    assert _create(client, admin, username="adm2", role="admin", office=...).status_code == 201


def test_inactive_office_cannot_take_staff(
    client: FlaskClient, admin: dict[str, str], make_office: Any
) -> None:
    client.patch(
        "/api/v1/offices/isb", json={"active": False}, headers={**admin, "If-Match": '"v1"'}
    )
    assert _create(client, admin, office="isb").status_code == 422


def test_duplicate_username_is_409(client: FlaskClient, admin: dict[str, str]) -> None:
    assert _create(client, admin).status_code == 201
    assert _create(client, admin, username="NADIA").status_code == 409


def test_list_is_paginated_by_username(client: FlaskClient, admin: dict[str, str]) -> None:
    for name in ("u-c", "u-a", "u-b"):
        assert _create(client, admin, username=name).status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(USERS, query_string=query, headers=admin).get_json()
        seen += [u["username"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen)
    assert {"u-a", "u-b", "u-c", "root-admin"} <= set(seen)
    bad = client.get(USERS, query_string={"cursor": "!!"}, headers=admin)
    assert bad.status_code == 422
    assert client.get(USERS, query_string={"limit": 10_000}, headers=admin).status_code == 422


def test_patch_needs_the_current_version(client: FlaskClient, admin: dict[str, str]) -> None:
    user_id = _create(client, admin).get_json()["id"]
    url = f"{USERS}/{user_id}"
    assert client.patch(url, json={"office": "isb"}, headers=admin).status_code == 428
    moved = client.patch(url, json={"office": "isb"}, headers={**admin, "If-Match": '"v1"'})
    assert moved.status_code == 200
    assert moved.headers["ETag"] == '"v2"'
    stale = client.patch(url, json={"active": False}, headers={**admin, "If-Match": '"v1"'})
    assert stale.status_code == 412
    assert client.get(url, headers=admin).headers["ETag"] == '"v2"'


def test_patch_validates_the_result(client: FlaskClient, admin: dict[str, str]) -> None:
    user_id = _create(client, admin).get_json()["id"]
    url = f"{USERS}/{user_id}"
    v1 = {**admin, "If-Match": '"v1"'}
    assert client.patch(url, json={"role": "auditor"}, headers=v1).status_code == 422
    assert client.patch(url, json={"office": None}, headers=v1).status_code == 422
    assert client.patch(url, json={"password": "x"}, headers=v1).status_code == 422
    both = client.patch(url, json={"role": "auditor", "office": None}, headers=v1)
    assert both.status_code == 200
    assert both.get_json()["office"] is None


def test_unchanged_patch_keeps_the_version(client: FlaskClient, admin: dict[str, str]) -> None:
    user_id = _create(client, admin).get_json()["id"]
    same = client.patch(
        f"{USERS}/{user_id}", json={"role": "caseworker"}, headers={**admin, "If-Match": '"v1"'}
    )
    assert same.headers["ETag"] == '"v1"'


def test_last_admin_cannot_be_removed(
    client: FlaskClient, db_session: Session, admin: dict[str, str]
) -> None:
    me = client.get("/api/v1/auth/me", headers=admin).get_json()
    url = f"{USERS}/{me['id']}"
    v1 = {**admin, "If-Match": '"v1"'}
    others = db_session.scalars(select(User).where(User.role == "admin")).all()
    for other in others:
        if str(other.id) != me["id"]:
            other.is_active = False
    db_session.flush()
    assert client.patch(url, json={"active": False}, headers=v1).status_code == 409
    demote = {"role": "supervisor", "office": "kbl"}
    assert client.patch(url, json=demote, headers=v1).status_code == 409
    assert _create(client, admin, username="second", role="admin", office=...).status_code == 201
    assert client.patch(url, json={"active": False}, headers=v1).status_code == 200


def test_reactivation_is_recorded(
    client: FlaskClient, db_session: Session, admin: dict[str, str]
) -> None:
    user_id = _create(client, admin).get_json()["id"]
    url = f"{USERS}/{user_id}"
    client.patch(url, json={"active": False}, headers={**admin, "If-Match": '"v1"'})
    assert (
        client.patch(url, json={"active": True}, headers={**admin, "If-Match": '"v2"'}).status_code
        == 200
    )
    actions = db_session.scalars(
        select(AuditEntry.action).where(AuditEntry.target == user_id).order_by(AuditEntry.seq)
    ).all()
    assert actions == ["user.create", "user.disable", "user.update"]


def test_reset_password(client: FlaskClient, admin: dict[str, str]) -> None:
    user_id = _create(client, admin).get_json()["id"]
    url = f"{USERS}/{user_id}/reset-password"
    body = {"password": "new-" + TEST_PASSWORD}
    assert client.post(url, json=body, headers=admin).status_code == 428
    stale = {**admin, "If-Match": '"v0"'}
    assert client.post(url, json=body, headers=stale).status_code == 412
    etag = client.get(f"{USERS}/{user_id}", headers=admin).headers["ETag"]
    short = client.post(url, json={"password": "short"}, headers={**admin, "If-Match": etag})
    assert short.status_code == 422
    reset = client.post(url, json=body, headers={**admin, "If-Match": etag})
    assert reset.status_code == 204
    assert reset.headers["ETag"] != etag
    old = client.post("/api/v1/auth/login", json={"username": "nadia", "password": TEST_PASSWORD})
    assert old.status_code == 401
    new = client.post(
        "/api/v1/auth/login", json={"username": "nadia", "password": "new-" + TEST_PASSWORD}
    )
    assert new.status_code == 200


def test_unknown_user_is_404(client: FlaskClient, admin: dict[str, str]) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    assert client.get(f"{USERS}/{missing}", headers=admin).status_code == 404
    assert client.get(f"{USERS}/not-a-uuid", headers=admin).status_code == 404
