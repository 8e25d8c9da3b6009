"""TOTP: enrolment, login with a code, refusals, sealed seeds and their rotation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from casework.audit.models import AuditEntry
from casework.auth.mfa import (
    mfa_seeds_behind,
    open_seed,
    reencrypt_mfa_seeds,
    seal_seed,
)
from casework.auth.models import AccessToken, LoginThrottle, User
from casework.auth.totp import time_step
from casework.security.errors import DecryptionError
from casework.security.keyring import Keyring
from tests.auth.helpers import LOGIN, TEST_PASSWORD, bearer, keyring, seed_of, totp_at

ENROL = "/api/v1/auth/mfa/enrol"
CONFIRM = "/api/v1/auth/mfa/confirm"
ME = "/api/v1/auth/me"
PASSWORD = {"password": TEST_PASSWORD}


def _now_step() -> int:
    return time_step(datetime.now(UTC))


@pytest.fixture
def supervisor(make_office: Any, make_user: Any) -> User:
    """A supervisor (MFA required by configuration) who has not enrolled yet."""
    make_office("kbl")
    user: User = make_user("supervisor", "kbl", username="sahar", mfa=False)
    return user


def _login(client: FlaskClient, username: str = "sahar", **extra: Any) -> Any:
    return client.post(LOGIN, json={"username": username, "password": TEST_PASSWORD, **extra})


def _enrolled(client: FlaskClient) -> tuple[str, dict[str, str], int]:
    """Log in, enrol and confirm; return the seed, the (now full) token's headers and
    the step the confirmation used."""
    answer = _login(client).get_json()
    headers = bearer(answer["token"])
    secret = client.post(ENROL, json=PASSWORD, headers=headers).get_json()["secret"]
    step = _now_step()
    confirmed = client.post(CONFIRM, json={"totp": totp_at(secret, step)}, headers=headers)
    assert confirmed.status_code == 200
    return secret, headers, step


def _forget_failures(session: Session) -> None:
    session.execute(delete(LoginThrottle))


def test_enrolment_flow(client: FlaskClient, db_session: Session, supervisor: User) -> None:
    answer = _login(client)
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["mfa_enrolment_required"] is True
    headers = bearer(body["token"])
    assert client.get(ME, headers=headers).status_code == 403  # enrolment only
    enrolment = client.post(ENROL, json=PASSWORD, headers=headers).get_json()
    assert set(enrolment) == {"secret", "otpauth_uri"}
    assert enrolment["otpauth_uri"].startswith("otpauth://totp/casework:sahar?")
    wrong = client.post(CONFIRM, json={"totp": "000000"}, headers=headers)
    assert wrong.status_code == 422
    code = totp_at(enrolment["secret"], _now_step())
    confirmed = client.post(CONFIRM, json={"totp": code}, headers=headers)
    assert confirmed.status_code == 200
    assert confirmed.get_json()["mfa_enabled"] is True
    assert client.get(ME, headers=headers).status_code == 200  # the same token, now full
    again = client.post(ENROL, json=PASSWORD, headers=headers)
    assert again.status_code == 422  # re-enrolling needs the current code too
    assert set(again.get_json()["errors"]["json"]) == {"totp"}
    actions = db_session.scalars(
        select(AuditEntry.action + ":" + AuditEntry.outcome).where(
            AuditEntry.action.like("auth.mfa%")
        )
    ).all()
    assert actions == [
        "auth.mfa_enrol:success",
        "auth.mfa_confirm:failure",
        "auth.mfa_confirm:success",
    ]


def test_login_then_needs_a_fresh_code(
    client: FlaskClient, db_session: Session, supervisor: User
) -> None:
    secret, _, used = _enrolled(client)
    refused = {
        "missing": {},
        "wrong": {"totp": "000000"},
        "replayed": {"totp": totp_at(secret, used)},
        "ahead": {"totp": totp_at(secret, _now_step() + 3)},
        "behind": {"totp": totp_at(secret, _now_step() - 3)},
        "malformed": {"totp": "12a456"},
    }
    for label, extra in refused.items():
        assert _login(client, **extra).status_code == 401, label
        _forget_failures(db_session)
    fresh = _login(client, totp=totp_at(secret, used + 1))
    assert fresh.status_code == 200
    assert "mfa_enrolment_required" not in fresh.get_json()
    again = _login(client, totp=totp_at(secret, used + 1))
    assert again.status_code == 401  # that step is used now


def test_missing_and_wrong_codes_look_like_wrong_passwords(
    client: FlaskClient, supervisor: User
) -> None:
    _enrolled(client)
    wrong_password = client.post(LOGIN, json={"username": "sahar", "password": "x" * 12})
    missing_code = _login(client)
    for response in (wrong_password, missing_code):
        assert response.status_code == 401
    assert wrong_password.get_json()["detail"] == missing_code.get_json()["detail"]


def test_wrong_codes_count_towards_the_lock(client: FlaskClient, supervisor: User) -> None:
    secret, _, used = _enrolled(client)
    for _ in range(5):
        assert _login(client, totp="000001").status_code == 401
    assert _login(client, totp=totp_at(secret, used + 1)).status_code == 429


def test_a_code_is_accepted_once_even_when_the_claim_races(
    app: Flask, db_session: Session, supervisor: User, client: FlaskClient
) -> None:
    from casework.auth.mfa import check_code
    from casework.auth.totp import TotpError

    secret, _, _ = _enrolled(client)
    user = db_session.get(User, supervisor.id)
    assert user is not None
    db_session.refresh(user)
    step = _now_step() + 1
    now = datetime.now(UTC)
    with app.app_context():
        ring = keyring(app)
        # Another request claimed the step after this one read the user:
        db_session.execute(update(User).where(User.id == user.id).values(mfa_last_step=step))
        with pytest.raises(TotpError):
            check_code(db_session, ring, user, totp_at(secret, step), now)


def test_seed_is_sealed_and_bound_to_its_user(
    app: Flask, db_session: Session, make_office: Any, make_user: Any
) -> None:
    make_office("kbl")
    alice, bob = make_user("admin"), make_user("auditor")
    ring = keyring(app)
    secret = seed_of(app, db_session, alice)
    assert secret.encode() not in bytes(alice.mfa_secret)
    assert alice.mfa_kek_id == ring.active_kek().kek_id
    with pytest.raises(DecryptionError):
        open_seed(ring, bob.id, alice.mfa_kek_id, alice.mfa_secret)
    kek_id, blob = seal_seed(ring, alice.id, secret)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(DecryptionError):
        open_seed(ring, alice.id, kek_id, tampered)


def test_rotation_reseals_seeds(app: Flask, db_session: Session, make_user: Any) -> None:
    users = [make_user("admin"), make_user("auditor")]
    ring = keyring(app)
    rotated = Keyring(ring.keks, ring.blind_index_roots, ring.signing_key)
    secrets_before = [seed_of(app, db_session, u) for u in users]
    rotated.rotate()
    assert mfa_seeds_behind(db_session, rotated) >= 2
    assert reencrypt_mfa_seeds(db_session, rotated) >= 2
    assert mfa_seeds_behind(db_session, rotated) == 0
    for user, secret in zip(users, secrets_before, strict=True):
        db_session.refresh(user)
        assert user.mfa_kek_id == rotated.active_kek().kek_id
        assert open_seed(rotated, user.id, user.mfa_kek_id, user.mfa_secret) == secret


def test_admin_can_reset_mfa(
    client: FlaskClient, db_session: Session, supervisor: User, make_user: Any, login_headers: Any
) -> None:
    _, headers, _ = _enrolled(client)
    admin = login_headers(make_user("admin"))
    url = f"/api/v1/users/{supervisor.id}/reset-mfa"
    assert client.post(url, headers=admin).status_code == 428
    etag = client.get(f"/api/v1/users/{supervisor.id}", headers=admin).headers["ETag"]
    assert client.post(url, headers={**admin, "If-Match": '"v999"'}).status_code == 412
    reset = client.post(url, headers={**admin, "If-Match": etag})
    assert reset.status_code == 200
    assert len(reset.get_json()["enrolment_code"].replace("-", "")) == 16
    assert client.get(ME, headers=headers).status_code == 401  # sessions ended
    assert _login(client).get_json()["mfa_enrolment_required"] is True
    assert (
        db_session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "user.mfa_reset")
        )
        == 1
    )


def test_a_pending_token_lives_only_the_enrolment_window_until_confirmed(
    client: FlaskClient, db_session: Session, supervisor: User
) -> None:
    token = _login(client).get_json()["token"]
    row = db_session.scalars(select(AccessToken).where(AccessToken.user_id == supervisor.id)).one()
    assert row.mfa_pending is True
    assert row.expires_at - row.created_at == timedelta(minutes=15)  # mfa_enrolment_minutes
    started = client.post(ENROL, json=PASSWORD, headers=bearer(token))
    assert started.status_code == 200
    code = totp_at(started.get_json()["secret"], _now_step())
    assert client.post(CONFIRM, json={"totp": code}, headers=bearer(token)).status_code == 200
    db_session.refresh(row)
    assert row.mfa_pending is False
    assert row.expires_at - row.created_at == timedelta(hours=12)  # token_absolute_hours


def test_a_pending_token_past_its_window_is_refused(
    client: FlaskClient, db_session: Session, supervisor: User
) -> None:
    token = _login(client).get_json()["token"]
    row = db_session.scalars(select(AccessToken).where(AccessToken.user_id == supervisor.id)).one()
    row.created_at -= timedelta(minutes=16)
    row.last_used_at = row.created_at
    row.expires_at -= timedelta(minutes=16)
    db_session.flush()
    assert client.post(ENROL, json=PASSWORD, headers=bearer(token)).status_code == 401
