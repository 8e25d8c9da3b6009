"""Real users and real tokens for tests of any feature.

``create_user`` writes a user straight to the database (so a test can also
build principals the API would refuse, such as a caseworker without an
office); ``login_headers`` signs in through the API, enrolling in or
answering MFA where the role requires it, and returns the Authorization header.
The conftest fixtures ``make_user`` and ``login_headers`` wrap these two.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pyotp
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from casework.auth import settings
from casework.auth.mfa import seal_seed, user_seed
from casework.auth.models import User
from casework.auth.passwords import hash_password
from casework.auth.totp import new_totp_secret, time_step
from casework.offices.models import Office
from casework.security.app import holder

TEST_PASSWORD = "plum-orbit-lantern-9"
LOGIN = "/api/v1/auth/login"


def create_user(
    app: Flask,
    session: Session,
    role: str,
    office: str | None = None,
    *,
    username: str | None = None,
    password: str = TEST_PASSWORD,
    mfa: bool | None = None,
    active: bool = True,
) -> User:
    """Insert and flush a user. ``mfa`` None: enrolled exactly when MFA is required of them
    (their role requires it and their office is not exempt)."""
    exempt = office is not None and bool(
        session.scalar(select(Office.mfa_exempt).where(Office.code == office))
    )
    with app.app_context():
        params = settings.password_params(app)
        enrolled = settings.mfa_required_for(role, exempt, app=app) if mfa is None else mfa
    user = User(
        id=uuid.uuid4(),
        username=username or f"{role.replace('_', '-')}-{uuid.uuid4().hex[:8]}",
        role=role,
        office_code=office,
        is_active=active,
        password_hash=hash_password(password, params),
    )
    if enrolled:
        user.mfa_kek_id, user.mfa_secret = seal_seed(keyring(app), user.id, new_totp_secret())
        user.mfa_enabled_at = datetime.now(UTC)
    session.add(user)
    session.flush()
    return user


def keyring(app: Flask) -> Any:
    return holder(app).get()


def totp_at(secret: str, step: int) -> str:
    """The code of ``step`` (30-second counter) for ``secret``."""
    return pyotp.TOTP(secret).at(step * 30)


def fresh_code(app: Flask, session: Session, user: User) -> str:
    """A code the server will accept now: from the current step or the next one.

    Never from the previous step (the clock may tick before the request), and
    never from a step already used; when the next step is used too, the test
    forgets the last step, a shortcut only tests may take.
    """
    now_step = time_step(datetime.now(UTC))
    last = session.scalar(select(User.mfa_last_step).where(User.id == user.id))
    step = now_step if last is None or last < now_step else last + 1
    if step > now_step + 1:
        session.execute(update(User).where(User.id == user.id).values(mfa_last_step=None))
        session.flush()
        step = now_step
    return totp_at(seed_of(app, session, user), step)


def seed_of(app: Flask, session: Session, user: User) -> str:
    stored = session.scalars(
        select(User).where(User.id == user.id).execution_options(populate_existing=True)
    ).one()
    return user_seed(keyring(app), stored)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login_headers(
    app: Flask,
    client: FlaskClient,
    session: Session,
    user: User,
    password: str = TEST_PASSWORD,
) -> dict[str, str]:
    """Sign ``user`` in through the API (enrolling in MFA when asked to) and
    return ``{"Authorization": "Bearer ..."}`` for a token with full permissions."""
    body: dict[str, str] = {"username": user.username, "password": password}
    if session.scalar(select(User.mfa_enabled_at).where(User.id == user.id)) is not None:
        body["totp"] = fresh_code(app, session, user)
    response = client.post(LOGIN, json=body)
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    headers = bearer(answer["token"])
    if answer.get("mfa_enrolment_required"):
        enrolled = client.post(
            "/api/v1/auth/mfa/enrol", json={"password": password}, headers=headers
        )
        assert enrolled.status_code == 200, enrolled.get_json()
        code = totp_at(enrolled.get_json()["secret"], time_step(datetime.now(UTC)))
        confirmed = client.post("/api/v1/auth/mfa/confirm", json={"totp": code}, headers=headers)
        assert confirmed.status_code == 200, confirmed.get_json()
    return headers
