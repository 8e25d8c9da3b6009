"""MFA that a stolen token cannot take over, and that every reader of case data needs.

A bearer token alone must not enrol, re-enrol or remove an authenticator; enrolment
ends every other session; an administrator's reset forces enrolment even in an
exempt office; only an office's audited ``mfa_exempt`` spares its staff.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.audit.models import AuditEntry
from casework.auth.models import AccessToken, User
from casework.auth.totp import time_step
from casework.offices.models import Office
from tests.auth.helpers import LOGIN, TEST_PASSWORD, bearer, fresh_code, totp_at

ENROL = "/api/v1/auth/mfa/enrol"
CONFIRM = "/api/v1/auth/mfa/confirm"
MFA = "/api/v1/auth/mfa"
ME = "/api/v1/auth/me"
WRONG = "wrong-" + TEST_PASSWORD
REAUTH_FAILED = "urn:casework:problem:reauthentication-failed"


def _sign_in(client: FlaskClient, user: User, **extra: str) -> dict[str, Any]:
    response = client.post(
        LOGIN, json={"username": user.username, "password": TEST_PASSWORD, **extra}
    )
    assert response.status_code == 200, response.get_json()
    answer: dict[str, Any] = response.get_json()
    return answer


def _enrol_and_confirm(client: FlaskClient, headers: dict[str, str], **extra: str) -> str:
    started = client.post(ENROL, json={"password": TEST_PASSWORD, **extra}, headers=headers)
    assert started.status_code == 200, started.get_json()
    secret: str = started.get_json()["secret"]
    code = totp_at(secret, time_step(datetime.now(UTC)))
    confirmed = client.post(CONFIRM, json={"totp": code}, headers=headers)
    assert confirmed.status_code == 200, confirmed.get_json()
    return secret


def _actions(session: Session, prefix: str) -> list[str]:
    rows = session.execute(
        select(AuditEntry.action, AuditEntry.outcome)
        .where(AuditEntry.action.like(f"{prefix}%"))
        .order_by(AuditEntry.seq)
    )
    return [f"{action}:{outcome}" for action, outcome in rows]


@pytest.fixture
def exempt_clerk(make_office: Any, make_user: Any) -> User:
    """A caseworker of an office exempt from MFA, not enrolled: full tokens at sign-in."""
    make_office("exm", mfa_exempt=True)
    user: User = make_user("caseworker", "exm", username="farid")
    assert user.mfa_enabled_at is None
    return user


@pytest.fixture
def clerk(make_office: Any, make_user: Any) -> User:
    """A caseworker of an ordinary office, enrolled (MFA is required of them)."""
    make_office("kbl")
    user: User = make_user("caseworker", "kbl", username="amal")
    assert user.mfa_enabled_at is not None
    return user


# --- item: a stolen token cannot enrol ------------------------------------------------


def test_a_token_alone_cannot_enrol(
    client: FlaskClient, db_session: Session, exempt_clerk: User
) -> None:
    headers = bearer(_sign_in(client, exempt_clerk)["token"])
    assert client.post(ENROL, headers=headers).status_code == 422  # no password: no enrolment
    assert client.post(ENROL, json={}, headers=headers).status_code == 422
    wrong = client.post(ENROL, json={"password": WRONG}, headers=headers)
    assert wrong.status_code == 403
    assert wrong.get_json()["type"] == REAUTH_FAILED
    db_session.expire_all()
    assert db_session.get(User, exempt_clerk.id).mfa_secret is None  # type: ignore[union-attr]
    assert _actions(db_session, "auth.mfa") == ["auth.mfa_enrol:failure"]


def test_password_guesses_through_a_token_count_towards_the_lock(
    client: FlaskClient, exempt_clerk: User
) -> None:
    headers = bearer(_sign_in(client, exempt_clerk)["token"])
    for _ in range(5):
        assert client.post(ENROL, json={"password": WRONG}, headers=headers).status_code == 403
    locked = client.post(ENROL, json={"password": TEST_PASSWORD}, headers=headers)
    assert locked.status_code == 429
    refused = client.post(LOGIN, json={"username": "farid", "password": TEST_PASSWORD})
    assert refused.status_code == 429  # the same counter as sign-in


def test_re_enrolment_needs_the_current_code(
    app: Any, client: FlaskClient, db_session: Session, clerk: User
) -> None:
    headers = bearer(_sign_in(client, clerk, totp=fresh_code(app, db_session, clerk))["token"])
    assert client.post(ENROL, json={"password": TEST_PASSWORD}, headers=headers).status_code == 422
    wrong = client.post(ENROL, json={"password": TEST_PASSWORD, "totp": "000000"}, headers=headers)
    assert wrong.status_code == 403
    db_session.expire_all()
    assert db_session.get(User, clerk.id).mfa_enabled_at is not None  # type: ignore[union-attr]
    _enrol_and_confirm(client, headers, totp=fresh_code(app, db_session, clerk))
    assert client.get(ME, headers=headers).get_json()["mfa_enabled"] is True


# --- item: enrolment ends every other session ----------------------------------------------


def test_turning_mfa_on_revokes_the_users_other_tokens(
    client: FlaskClient, exempt_clerk: User
) -> None:
    older = bearer(_sign_in(client, exempt_clerk)["token"])  # say, a stolen one
    mine = bearer(_sign_in(client, exempt_clerk)["token"])
    assert client.get(ME, headers=older).status_code == 200
    _enrol_and_confirm(client, mine)
    assert client.get(ME, headers=older).status_code == 401
    assert client.get(ME, headers=mine).status_code == 200


# --- item: removing one's own MFA ------------------------------------------------------------


def test_removing_own_mfa_needs_password_and_code(
    app: Any, client: FlaskClient, db_session: Session, clerk: User
) -> None:
    other = bearer(_sign_in(client, clerk, totp=fresh_code(app, db_session, clerk))["token"])
    mine = bearer(_sign_in(client, clerk, totp=fresh_code(app, db_session, clerk))["token"])
    assert client.delete(MFA, headers=mine).status_code == 422
    assert client.delete(MFA, json={"password": TEST_PASSWORD}, headers=mine).status_code == 422
    wrong = client.delete(MFA, json={"password": WRONG, "totp": "000000"}, headers=mine)
    assert wrong.status_code == 403
    assert wrong.get_json()["type"] == REAUTH_FAILED
    removed = client.delete(
        MFA,
        json={"password": TEST_PASSWORD, "totp": fresh_code(app, db_session, clerk)},
        headers=mine,
    )
    assert removed.status_code == 200, removed.get_json()
    assert removed.get_json()["mfa_enabled"] is False
    assert removed.get_json()["mfa_pending"] is True  # MFA is required of a caseworker
    assert client.get(ME, headers=other).status_code == 401  # other sessions ended
    assert client.get(ME, headers=mine).status_code == 403  # this one: enrolment only
    _enrol_and_confirm(client, mine)
    assert client.get(ME, headers=mine).status_code == 200
    assert _actions(db_session, "auth.mfa_remove") == [
        "auth.mfa_remove:failure",
        "auth.mfa_remove:success",
    ]


def test_removing_mfa_one_does_not_have_is_a_conflict(
    client: FlaskClient, exempt_clerk: User
) -> None:
    headers = bearer(_sign_in(client, exempt_clerk)["token"])
    answer = client.delete(MFA, json={"password": TEST_PASSWORD}, headers=headers)
    assert answer.status_code == 409


# --- item: the administrator's reset ------------------------------------------------------------


def test_reset_forces_enrolment_even_in_an_exempt_office(
    client: FlaskClient, db_session: Session, exempt_clerk: User, login_headers: Any, make_user: Any
) -> None:
    mine = bearer(_sign_in(client, exempt_clerk)["token"])
    _enrol_and_confirm(client, mine)  # voluntarily, in an exempt office
    admin = login_headers(make_user("admin"))
    etag = client.get(f"/api/v1/users/{exempt_clerk.id}", headers=admin).headers["ETag"]
    reset = client.post(
        f"/api/v1/users/{exempt_clerk.id}/reset-mfa", headers={**admin, "If-Match": etag}
    )
    assert reset.status_code == 200
    assert client.get(ME, headers=mine).status_code == 401  # sessions ended
    answer = _sign_in(client, exempt_clerk)
    assert answer["mfa_enrolment_required"] is True
    pending = bearer(answer["token"])
    assert client.get(ME, headers=pending).status_code == 403
    _enrol_and_confirm(client, pending, enrolment_code=reset.get_json()["enrolment_code"])
    db_session.expire_all()
    user = db_session.get(User, exempt_clerk.id)
    assert user is not None
    assert user.mfa_enrolment_due is False
    assert _actions(db_session, "user.mfa_reset") == ["user.mfa_reset:success"]


def _reset(client: FlaskClient, admin: dict[str, str], user: User) -> str:
    etag = client.get(f"/api/v1/users/{user.id}", headers=admin).headers["ETag"]
    reset = client.post(f"/api/v1/users/{user.id}/reset-mfa", headers={**admin, "If-Match": etag})
    assert reset.status_code == 200, reset.get_json()
    code: str = reset.get_json()["enrolment_code"]
    return code


def test_after_a_reset_the_password_alone_cannot_enrol(
    client: FlaskClient, db_session: Session, clerk: User, login_headers: Any, make_user: Any
) -> None:
    code = _reset(client, login_headers(make_user("admin")), clerk)
    # Whoever knows the password signs in, and gets a token good only for enrolment ...
    pending = bearer(_sign_in(client, clerk)["token"])
    for path in ("/api/v1/cases", ME, "/api/v1/users"):
        assert client.get(path, headers=pending).status_code == 403, path
    # ... with which they cannot enrol an authenticator of their own without the code.
    missing = client.post(ENROL, json={"password": TEST_PASSWORD}, headers=pending)
    assert missing.status_code == 422
    assert "enrolment_code" in missing.get_json()["errors"]["json"]
    wrong = client.post(
        ENROL,
        json={"password": TEST_PASSWORD, "enrolment_code": "AAAA-AAAA-AAAA-AAAA"},
        headers=pending,
    )
    assert wrong.status_code == 403
    assert wrong.get_json()["type"] == REAUTH_FAILED
    db_session.expire_all()
    assert db_session.get(User, clerk.id).mfa_secret is None  # type: ignore[union-attr]
    failures = db_session.scalars(
        select(AuditEntry.fields).where(
            AuditEntry.action == "auth.mfa_enrol", AuditEntry.outcome == "failure"
        )
    ).all()
    assert [json.loads(f) for f in failures] == [["enrolment_code"]]
    # The owner, given the code by the administrator, enrols (any spelling of it).
    _enrol_and_confirm(client, pending, enrolment_code=code.lower().replace("-", " "))
    db_session.expire_all()
    assert db_session.get(User, clerk.id).mfa_enrolment_due is False  # type: ignore[union-attr]


def test_a_later_change_of_the_account_voids_the_enrolment_code(
    client: FlaskClient, clerk: User, login_headers: Any, make_user: Any
) -> None:
    admin = login_headers(make_user("admin"))
    first = _reset(client, admin, clerk)
    second = _reset(client, admin, clerk)  # e.g. the first code went astray
    assert first != second
    pending = bearer(_sign_in(client, clerk)["token"])
    stale = client.post(
        ENROL, json={"password": TEST_PASSWORD, "enrolment_code": first}, headers=pending
    )
    assert stale.status_code == 403
    _enrol_and_confirm(client, pending, enrolment_code=second)


def test_an_enrolment_code_is_asked_only_after_a_reset(
    client: FlaskClient, make_office: Any, make_user: Any
) -> None:
    make_office("kbl")
    newcomer = make_user("caseworker", "kbl", mfa=False)  # first enrolment: password only
    pending = bearer(_sign_in(client, newcomer)["token"])
    _enrol_and_confirm(client, pending)


def test_removing_ones_mfa_leaves_a_token_for_the_enrolment_window_only(
    app: Flask, client: FlaskClient, db_session: Session, clerk: User
) -> None:
    answer = _sign_in(client, clerk, totp=fresh_code(app, db_session, clerk))
    headers = bearer(answer["token"])
    removed = client.delete(
        MFA,
        json={"password": TEST_PASSWORD, "totp": fresh_code(app, db_session, clerk)},
        headers=headers,
    )
    assert removed.status_code == 200, removed.get_json()
    token = db_session.scalars(
        select(AccessToken).where(AccessToken.user_id == clerk.id, AccessToken.revoked_at.is_(None))
    ).one()
    db_session.refresh(token)
    assert token.expires_at - datetime.now(UTC) <= timedelta(minutes=15)


# --- item: MFA for everyone who reads case data ----------------------------------------------


@pytest.mark.parametrize("role", ["caseworker", "vetting_officer", "supervisor"])
def test_every_case_reader_must_enrol_by_default(
    client: FlaskClient, make_office: Any, make_user: Any, role: str
) -> None:
    make_office("kbl")
    user = make_user(role, "kbl", mfa=False)
    answer = _sign_in(client, user)
    assert answer["mfa_enrolment_required"] is True
    assert client.get("/api/v1/cases", headers=bearer(answer["token"])).status_code == 403


def test_office_exemption_is_an_audited_admin_change(
    client: FlaskClient,
    db_session: Session,
    make_office: Any,
    make_user: Any,
    login_headers: Any,
) -> None:
    make_office("kbl")
    clerk = make_user("caseworker", "kbl", mfa=False)
    admin = login_headers(make_user("admin"))
    office = client.get("/api/v1/offices/kbl", headers=admin)
    assert office.get_json()["mfa_exempt"] is False
    assert (
        client.patch("/api/v1/offices/kbl", json={"mfa_exempt": True}, headers=admin).status_code
        == 428
    )
    supervisor = login_headers(make_user("supervisor", "kbl"))
    refused = client.patch(
        "/api/v1/offices/kbl",
        json={"mfa_exempt": True},
        headers={**supervisor, "If-Match": office.headers["ETag"]},
    )
    assert refused.status_code == 403
    exempted = client.patch(
        "/api/v1/offices/kbl",
        json={"mfa_exempt": True},
        headers={**admin, "If-Match": office.headers["ETag"]},
    )
    assert exempted.status_code == 200
    assert exempted.get_json()["mfa_exempt"] is True
    assert client.get("/api/v1/offices/kbl", headers=admin).get_json()["mfa_exempt"] is True
    entry = db_session.scalars(
        select(AuditEntry).where(AuditEntry.action == "office.update").order_by(AuditEntry.seq)
    ).all()[-1]
    assert entry.target == "kbl"
    assert "mfa_exempt" in entry.fields
    answer = _sign_in(client, clerk)
    assert "mfa_enrolment_required" not in answer
    token = bearer(answer["token"])
    assert client.get("/api/v1/cases", headers=token).status_code == 200
    lifted = client.patch(
        "/api/v1/offices/kbl",
        json={"mfa_exempt": False},
        headers={**admin, "If-Match": exempted.headers["ETag"]},
    )
    assert lifted.status_code == 200
    # The token issued under the exemption is good only for enrolment now.
    assert client.get("/api/v1/cases", headers=token).status_code == 403
    assert db_session.scalar(select(Office.mfa_exempt).where(Office.code == "kbl")) is False
