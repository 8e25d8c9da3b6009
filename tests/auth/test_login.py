"""Sign-in, tokens and sign-out through the API, with real users."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from casework.audit.models import AuditEntry
from casework.auth.models import AccessToken, User
from casework.auth.passwords import PasswordParams, hash_password
from casework.auth.tokens import hash_token, new_token
from casework.timestamps import utcnow
from tests.auth.helpers import LOGIN, TEST_PASSWORD, bearer

ME = "/api/v1/auth/me"
LOGOUT = "/api/v1/auth/logout"


@pytest.fixture
def caseworker(make_office: Any, make_user: Any) -> User:
    make_office("kbl")
    user: User = make_user("caseworker", "kbl", username="farida")
    return user


def _login(client: FlaskClient, username: str, password: str = TEST_PASSWORD, **extra: Any) -> Any:
    return client.post(LOGIN, json={"username": username, "password": password, **extra})


def _token_row(session: Session, token: str) -> AccessToken:
    row = session.scalar(select(AccessToken).where(AccessToken.token_hash == hash_token(token)))
    assert row is not None
    return row


def _actions(session: Session, since: int = 0) -> list[tuple[str, str]]:
    rows = session.execute(
        select(AuditEntry.action, AuditEntry.outcome).where(AuditEntry.seq > since)
    )
    return [(r.action, r.outcome) for r in rows]


def _last_seq(session: Session) -> int:
    return session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1)) or 0


def test_login_returns_an_opaque_token_stored_only_as_a_hash(
    client: FlaskClient, db_session: Session, caseworker: User
) -> None:
    response = _login(client, "farida")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"token", "expires_at"}
    assert body["token"].startswith("cwt_")
    row = _token_row(db_session, body["token"])
    assert row.user_id == caseworker.id
    stored = db_session.execute(select(AccessToken.token_hash)).scalars().all()
    assert all(body["token"].encode() not in bytes(h) for h in stored)
    assert body["expires_at"].startswith(row.expires_at.isoformat()[:19])


def test_username_is_matched_case_insensitively(client: FlaskClient, caseworker: User) -> None:
    assert _login(client, "  FARIDA ").status_code == 200


def test_me_and_logout(client: FlaskClient, db_session: Session, caseworker: User) -> None:
    headers = bearer(_login(client, "farida").get_json()["token"])
    me = client.get(ME, headers=headers).get_json()
    assert me["username"] == "farida"
    assert me["office"] == "kbl"
    assert "cases:read" in me["permissions"]
    assert me["mfa_pending"] is False
    since = _last_seq(db_session)
    assert client.post(LOGOUT, headers=headers).status_code == 204
    assert client.get(ME, headers=headers).status_code == 401
    assert ("auth.logout", "success") in _actions(db_session, since)
    assert ("auth.token_rejected", "denied") in _actions(db_session, since)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Bearer not-a-token",
        "Basic dXNlcjpwYXNz",
        "Bearer cwt_" + "A" * 43,  # well-formed, unknown
        "Bearer " + new_token() + "x",
    ],
)
def test_malformed_or_unknown_tokens_are_401(
    client: FlaskClient, db_session: Session, header: str
) -> None:
    since = _last_seq(db_session)
    response = client.get(ME, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert _actions(db_session, since) == [("auth.token_rejected", "denied")]


def test_absolute_expiry(client: FlaskClient, db_session: Session, caseworker: User) -> None:
    token = _login(client, "farida").get_json()["token"]
    db_session.execute(
        update(AccessToken)
        .where(AccessToken.token_hash == hash_token(token))
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    assert client.get(ME, headers=bearer(token)).status_code == 401


def test_idle_expiry(
    client: FlaskClient, db_session: Session, caseworker: User, app: Flask
) -> None:
    token = _login(client, "farida").get_json()["token"]
    idle = app.config["CASEWORK"]["token_idle_minutes"]
    db_session.execute(
        update(AccessToken)
        .where(AccessToken.token_hash == hash_token(token))
        .values(last_used_at=utcnow() - timedelta(minutes=idle, seconds=1))
    )
    assert client.get(ME, headers=bearer(token)).status_code == 401


def test_use_refreshes_idle_time(
    client: FlaskClient, db_session: Session, caseworker: User
) -> None:
    token = _login(client, "farida").get_json()["token"]
    old = utcnow() - timedelta(minutes=5)
    db_session.execute(
        update(AccessToken)
        .where(AccessToken.token_hash == hash_token(token))
        .values(last_used_at=old)
    )
    assert client.get(ME, headers=bearer(token)).status_code == 200
    db_session.expire_all()
    assert _token_row(db_session, token).last_used_at > old + timedelta(minutes=4)


def test_disabled_users_token_is_401(
    client: FlaskClient, db_session: Session, caseworker: User
) -> None:
    token = _login(client, "farida").get_json()["token"]
    db_session.execute(update(User).where(User.id == caseworker.id).values(is_active=False))
    assert client.get(ME, headers=bearer(token)).status_code == 401


def test_deactivated_office_ends_its_staffs_sessions(
    client: FlaskClient, db_session: Session, caseworker: User, make_user: Any, login_headers: Any
) -> None:
    token = _login(client, "farida").get_json()["token"]
    admin = login_headers(make_user("admin"))
    response = client.patch(
        "/api/v1/offices/kbl", json={"active": False}, headers={**admin, "If-Match": '"v1"'}
    )
    assert response.status_code == 200
    assert client.get(ME, headers=bearer(token)).status_code == 401
    assert _login(client, "farida").status_code == 401


@pytest.mark.parametrize(
    ("change", "action"),
    [
        ({"active": False}, "user.disable"),
        ({"role": "vetting_officer"}, "user.role_change"),
        ({"office": "isb"}, "user.update"),
    ],
)
def test_disabling_or_changing_role_or_office_revokes_tokens(
    client: FlaskClient,
    db_session: Session,
    caseworker: User,
    make_office: Any,
    make_user: Any,
    login_headers: Any,
    change: dict[str, Any],
    action: str,
) -> None:
    make_office("isb")
    token = _login(client, "farida").get_json()["token"]
    admin = login_headers(make_user("admin"))
    since = _last_seq(db_session)
    response = client.patch(
        f"/api/v1/users/{caseworker.id}", json=change, headers={**admin, "If-Match": '"v1"'}
    )
    assert response.status_code == 200, response.get_json()
    assert client.get(ME, headers=bearer(token)).status_code == 401
    assert (action, "success") in _actions(db_session, since)


def test_password_is_rehashed_when_costs_change(
    client: FlaskClient, db_session: Session, caseworker: User
) -> None:
    weaker = hash_password(TEST_PASSWORD, PasswordParams(memory_kib=512, time_cost=1))
    db_session.execute(update(User).where(User.id == caseworker.id).values(password_hash=weaker))
    assert _login(client, "farida").status_code == 200
    stored = db_session.scalar(select(User.password_hash).where(User.id == caseworker.id))
    assert stored != weaker
    assert stored.startswith("$argon2id$")
    assert _login(client, "farida").status_code == 200


def test_wrong_credentials_all_look_the_same(
    client: FlaskClient, db_session: Session, caseworker: User, make_user: Any
) -> None:
    make_user("caseworker", "kbl", username="omid", active=False)
    answers = [
        _login(client, "nobody-here"),
        _login(client, "farida", "wrong-" + TEST_PASSWORD),
        _login(client, "omid"),  # disabled, right password
        _login(client, "farida", totp="123456"),  # no MFA: a code is ignored, not a hint
    ]
    first = answers[0]
    for answer in answers[:3]:
        body = answer.get_json()
        body.pop("request_id")
        assert answer.status_code == 401
        assert body == {k: v for k, v in first.get_json().items() if k != "request_id"}
    assert answers[3].status_code == 200


def test_login_audit_trail(client: FlaskClient, db_session: Session, caseworker: User) -> None:
    since = _last_seq(db_session)
    _login(client, "farida", "wrong-" + TEST_PASSWORD)
    _login(client, "nobody-here")
    _login(client, "farida")
    rows = db_session.execute(
        select(AuditEntry.action, AuditEntry.outcome, AuditEntry.actor, AuditEntry.target)
        .where(AuditEntry.seq > since)
        .order_by(AuditEntry.seq)
    ).all()
    user_id = str(caseworker.id)
    assert [tuple(r) for r in rows] == [
        ("auth.login_failed", "failure", None, user_id),
        ("auth.login_failed", "failure", None, None),
        ("auth.login", "success", user_id, user_id),
    ]


def test_invalid_login_bodies_are_422(client: FlaskClient) -> None:
    assert client.post(LOGIN, json={"username": "x"}).status_code == 422
    assert (
        client.post(LOGIN, json={"username": "x", "password": "y", "extra": 1}).status_code == 422
    )
    too_long = {"username": "x", "password": "p" * 4097}
    assert client.post(LOGIN, json=too_long).status_code == 422
