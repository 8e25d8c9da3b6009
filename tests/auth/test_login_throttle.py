"""Login throttling per account and per client address; timing of refusals."""

from __future__ import annotations

import statistics
import time
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from casework.audit.models import AuditEntry
from casework.auth.models import LoginThrottle, User
from casework.timestamps import utcnow
from tests.auth.helpers import LOGIN, TEST_PASSWORD

WRONG = "wrong-" + TEST_PASSWORD


@pytest.fixture
def farida(make_office: Any, make_user: Any) -> User:
    make_office("kbl")
    user: User = make_user("caseworker", "kbl", username="farida")
    return user


def _login(client: FlaskClient, username: str, password: str, address: str = "203.0.113.7") -> Any:
    return client.post(
        LOGIN,
        json={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def _count(session: Session, action: str, outcome: str | None = None) -> int:
    query = select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action)
    if outcome:
        query = query.where(AuditEntry.outcome == outcome)
    return session.scalar(query) or 0


def test_sixth_wrong_password_is_429_and_right_one_still_refused(
    client: FlaskClient, db_session: Session, farida: User
) -> None:
    for _ in range(5):
        assert _login(client, "farida", WRONG).status_code == 401
    sixth = _login(client, "farida", WRONG)
    assert sixth.status_code == 429
    assert 1 <= int(sixth.headers["Retry-After"]) <= 30
    right = _login(client, "farida", TEST_PASSWORD, address="198.51.100.9")
    assert right.status_code == 429  # the account is locked, whatever the address
    assert _count(db_session, "auth.locked") == 1
    assert _count(db_session, "auth.login_failed", "denied") == 2


def test_locked_attempts_are_not_counted(
    client: FlaskClient, db_session: Session, farida: User
) -> None:
    for _ in range(5):
        _login(client, "farida", WRONG)
    failures = db_session.scalar(select(func.max(LoginThrottle.failures)))
    for _ in range(3):
        assert _login(client, "farida", WRONG).status_code == 429
    assert db_session.scalar(select(func.max(LoginThrottle.failures))) == failures == 5


def test_back_off_doubles_and_success_resets_the_account(
    client: FlaskClient, db_session: Session, farida: User
) -> None:
    for _ in range(5):
        _login(client, "farida", WRONG)
    _expire_locks(db_session)
    assert _login(client, "farida", WRONG).status_code == 401  # 6th failure: 60 s
    locked = _login(client, "farida", WRONG)
    assert 30 < int(locked.headers["Retry-After"]) <= 60
    _expire_locks(db_session)
    assert _login(client, "farida", TEST_PASSWORD).status_code == 200
    assert _login(client, "farida", WRONG, address="192.0.2.1").status_code == 401


def _expire_locks(session: Session) -> None:
    """As if the lock had run out: move the last failure back by the longest lock."""
    session.execute(update(LoginThrottle).values(last_failure_at=utcnow() - timedelta(minutes=10)))


def test_address_is_throttled_across_usernames(
    client: FlaskClient, db_session: Session, farida: User
) -> None:
    for name in ("ana", "ben", "chen", "dara", "eli"):
        assert _login(client, name, WRONG).status_code == 401
    assert _login(client, "farida", TEST_PASSWORD).status_code == 429
    assert _login(client, "farida", TEST_PASSWORD, address="192.0.2.55").status_code == 200


def test_unknown_usernames_lock_like_real_ones(client: FlaskClient, farida: User) -> None:
    for _ in range(5):
        assert _login(client, "nobody", WRONG, address="192.0.2.10").status_code == 401
    assert _login(client, "nobody", WRONG, address="192.0.2.11").status_code == 429


def test_ipv6_clients_are_counted_per_64(client: FlaskClient, farida: User) -> None:
    for host in range(5):
        _login(client, f"user{host}", WRONG, address=f"2001:db8:1:2::{host + 1}")
    assert _login(client, "farida", TEST_PASSWORD, address="2001:db8:1:2::ff").status_code == 429


def test_counters_name_neither_users_nor_addresses(
    client: FlaskClient, db_session: Session, farida: User
) -> None:
    _login(client, "farida", WRONG)
    keys = db_session.scalars(select(LoginThrottle.key)).all()
    assert keys
    assert all("farida" not in key and "203.0.113" not in key for key in keys)


def test_reset_password_lifts_the_lock(
    client: FlaskClient, farida: User, make_user: Any, login_headers: Any
) -> None:
    for _ in range(6):
        _login(client, "farida", WRONG)
    admin = login_headers(make_user("admin"))
    new = "fresh-" + TEST_PASSWORD
    reset = client.post(
        f"/api/v1/users/{farida.id}/reset-password", json={"password": new}, headers=admin
    )
    assert reset.status_code == 204
    assert _login(client, "farida", new, address="192.0.2.200").status_code == 200


def test_timing_of_unknown_user_and_wrong_password(
    app: Flask,
    client: FlaskClient,
    db_session: Session,
    make_office: Any,
    make_user: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Measures, does not assert on time: 200 samples each at OWASP's minimum argon2id cost.

    The figures go to the terminal (``-s``) for the issue note.
    """
    settings = app.config["CASEWORK"]
    monkeypatch.setitem(settings, "password_hash_memory_kib", 19 * 1024)
    monkeypatch.setitem(settings, "password_hash_time_cost", 2)
    make_office("kbl")
    make_user("caseworker", "kbl", username="timed")
    samples: dict[str, list[float]] = {"unknown user": [], "wrong password": []}
    for round_ in range(200):
        for label, username in (("unknown user", "untimed"), ("wrong password", "timed")):
            db_session.execute(delete(LoginThrottle))
            started = time.perf_counter()
            response = _login(
                client, username, WRONG, address=f"10.0.{round_ // 250}.{round_ % 250}"
            )
            samples[label].append(time.perf_counter() - started)
            assert response.status_code == 401
    unknown = statistics.median(samples["unknown user"]) * 1000
    wrong = statistics.median(samples["wrong password"]) * 1000
    with capsys.disabled():
        print(
            f"\nlogin timing, 200 samples each: unknown user median {unknown:.2f} ms, "
            f"wrong password median {wrong:.2f} ms, ratio {unknown / wrong:.3f}"
        )
