"""Sign-in in two short transactions: the attempt is counted and committed first, the
password is checked with no transaction open, the outcome is recorded in a second one.

The tests that look at locks run on a service that really commits (``scratch_service``):
the shared fixtures hold one outer transaction for the whole test.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from casework.audit.models import AuditEntry
from casework.auth import sessions
from casework.auth.models import AccessToken, LoginThrottle, User
from casework.auth.throttle import ThrottlePolicy
from casework.db import get_db
from casework.offices.models import Office
from casework.timestamps import utcnow
from tests.auth.helpers import LOGIN, TEST_PASSWORD, create_user
from tests.cases.scratch import Scratch, scratch_service

WRONG = "wrong-" + TEST_PASSWORD
OFFICE = "ph-1"


@pytest.fixture
def scratch(database_url: str, tmp_path: Path) -> Iterator[Scratch]:
    with scratch_service(database_url, tmp_path) as service:
        with get_db(service.app).session_factory() as session:
            session.add(Office(code=OFFICE, name="Phases", country_code="JOR", mfa_exempt=True))
            session.flush()
            create_user(service.app, session, "caseworker", OFFICE, username="nadia")
            session.commit()
        yield service


def _login(client: FlaskClient, username: str, password: str, address: str) -> Any:
    return client.post(
        LOGIN,
        json={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def _wrap(
    monkeypatch: pytest.MonkeyPatch,
    before: Callable[[], None],
    names: tuple[str, ...] = ("verify_password",),
) -> list[str]:
    """Call ``before`` whenever sessions calls one of ``names`` (password checks), then the
    real one; return the list of the calls made."""
    calls: list[str] = []
    for name in names:
        real = getattr(sessions, name)

        def checked(*args: Any, _name: str = name, _real: Any = real, **kwargs: Any) -> Any:
            calls.append(_name)
            before()
            return _real(*args, **kwargs)

        monkeypatch.setattr(sessions, name, checked)
    return calls


def _nothing_held(scratch: Scratch) -> None:
    """Fail unless another connection can write now, and no counter is locked."""
    if scratch.sqlite_file is not None:
        # SQLite's one write lock, taken at once or not at all (no busy wait).
        other = sqlite3.connect(scratch.sqlite_file, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()
    else:
        with get_db(scratch.app).engine.connect() as other:
            other.execute(text("SET lock_timeout = '1ms'"))
            other.execute(select(LoginThrottle.key).with_for_update(nowait=True)).all()
            idle = other.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
                )
            )
            assert idle == 0
            other.rollback()
    # And a write of the service itself goes through (the writer queue is free too).
    with get_db(scratch.app).session_factory() as session:
        session.add(Office(code=f"w-{utcnow().microsecond}", name="A write", country_code="JOR"))
        session.commit()


@pytest.mark.parametrize("password", [TEST_PASSWORD, WRONG])
@pytest.mark.parametrize("username", ["nadia", "nobody"])
def test_the_password_is_checked_while_no_transaction_is_open(
    scratch: Scratch, monkeypatch: pytest.MonkeyPatch, username: str, password: str
) -> None:
    held = _wrap(monkeypatch, lambda: _nothing_held(scratch), ("verify_password", "verify_dummy"))
    response = _login(scratch.app.test_client(), username, password, "203.0.113.5")
    right = username == "nadia" and password == TEST_PASSWORD
    assert response.status_code == (200 if right else 401)
    assert held == ["verify_dummy" if username == "nobody" else "verify_password"]


def test_re_authentication_checks_the_password_while_no_transaction_is_open(
    scratch: Scratch, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = scratch.app.test_client()
    token = _login(client, "nadia", TEST_PASSWORD, "203.0.113.6").get_json()["token"]
    calls = _wrap(monkeypatch, lambda: _nothing_held(scratch))
    for password, status in ((WRONG, 403), (TEST_PASSWORD, 200)):
        enrol = client.post(
            "/api/v1/auth/mfa/enrol",
            json={"password": password},
            headers={"Authorization": f"Bearer {token}"},
            environ_base={"REMOTE_ADDR": "203.0.113.6"},
        )
        assert enrol.status_code == status, enrol.get_json()
    assert len(calls) == 2


def test_parallel_guesses_get_no_more_password_checks_than_the_policy_allows(
    scratch: Scratch, monkeypatch: pytest.MonkeyPatch
) -> None:
    with scratch.app.app_context():
        allowed = sessions.settings.throttle_policy().max_failures
    guesses = allowed * 3
    checks = _wrap(monkeypatch, lambda: threading.Event().wait(0.02))  # widen the race
    barrier = threading.Barrier(guesses)
    answers: list[int] = [0] * guesses

    def guess(position: int) -> None:
        client = scratch.app.test_client()
        barrier.wait()
        # Each from its own address: only the account's counter stands in the way.
        answers[position] = _login(client, "nadia", WRONG, f"198.51.100.{position + 1}").status_code

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(guesses)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(checks) == allowed
    assert sorted(answers) == [401] * allowed + [429] * (guesses - allowed)
    with get_db(scratch.app).session_factory() as session:
        locked = session.scalar(select(func.count()).where(AuditEntry.action == "auth.locked"))
        assert locked == 1


def test_a_crash_between_the_phases_leaves_the_attempt_counted(
    scratch: Scratch, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*_args: Any) -> bool:
        raise RuntimeError("the process died while checking the password")

    monkeypatch.setattr(sessions, "verify_password", crash)
    response = _login(scratch.app.test_client(), "nadia", TEST_PASSWORD, "203.0.113.9")
    assert response.status_code == 500
    with get_db(scratch.app).session_factory() as session:
        assert sorted(session.scalars(select(LoginThrottle.failures))) == [1, 1]
        assert session.scalar(select(func.count()).select_from(AccessToken)) == 0
        assert (
            session.scalar(
                select(func.count()).where(
                    AuditEntry.action.in_(["auth.login", "auth.login_failed"])
                )
            )
            == 0
        )
        user = session.scalar(select(User).where(User.username == "nadia"))
        assert user is not None
        assert user.last_login_at is None


# --- on the shared fixtures ------------------------------------------------


@pytest.fixture
def farida(make_office: Any, make_user: Any) -> User:
    make_office("kbl", mfa_exempt=True)
    user: User = make_user("caseworker", "kbl", username="farida")
    return user


def _rows(session: Session) -> dict[str, tuple[Any, ...]]:
    rows = session.scalars(select(LoginThrottle).execution_options(populate_existing=True))
    return {row.key: (row.failures, row.last_failure_at, row.expires_at) for row in rows}


def test_a_success_after_failures_resets_the_account_and_keeps_the_address(
    client: FlaskClient, db_session: Session, farida: User
) -> None:
    for _ in range(3):
        assert _login(client, "farida", WRONG, "203.0.113.7").status_code == 401
    before = _rows(db_session)
    assert sorted(failures for failures, _, _ in before.values()) == [3, 3]
    assert _login(client, "farida", TEST_PASSWORD, "203.0.113.7").status_code == 200
    after = _rows(db_session)
    account, address = (key for key in sorted(before, key=lambda k: not k.startswith("account")))
    assert after[address] == before[address]  # exactly as before the attempt
    assert after[account][:2] == (0, None)
    assert after[account][2] == before[account][2]
    # Two more failures from the address lock it (3 + 2); the account starts from zero.
    for _ in range(2):
        assert _login(client, "farida", WRONG, "203.0.113.7").status_code == 401
    assert _login(client, "farida", TEST_PASSWORD, "203.0.113.7").status_code == 429
    assert _login(client, "farida", TEST_PASSWORD, "192.0.2.8").status_code == 200


def test_a_success_takes_back_only_its_own_count(db_session: Session) -> None:
    """Another attempt counted between a success's two phases keeps its failure."""
    policy = ThrottlePolicy()
    now = utcnow()
    earlier = now - timedelta(seconds=20)
    db_session.add_all(
        [
            LoginThrottle(key="account:a", failures=2, last_failure_at=earlier, expires_at=now),
            LoginThrottle(key="address:b", failures=2, last_failure_at=earlier, expires_at=now),
        ]
    )
    db_session.flush()
    keys = ("account:a", "address:b")
    counters = sessions._locked_rows(db_session, keys)
    ours = sessions._count_attempt(policy, counters, now)
    later = now + timedelta(seconds=1)
    theirs = sessions._count_attempt(policy, sessions._locked_rows(db_session, keys), later)
    assert theirs.counted == (4, 4)
    sessions._take_back(db_session, policy, ours)
    rows = _rows(db_session)
    assert rows["account:a"][:2] == (0, None)
    assert rows["address:b"] == (3, later, policy.expires_at(3, later))
    sessions._take_back(db_session, policy, theirs)
    assert _rows(db_session)["address:b"][:2] == (2, later)  # the lock may end later, not earlier
