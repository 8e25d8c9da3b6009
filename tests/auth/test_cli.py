"""``casework create-user`` and the first administrator created by ``casework init``."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.audit.models import AuditEntry
from casework.auth.cli import first_admin_step
from casework.auth.models import User
from casework.cli import main
from casework.security.app import ensure_keyring
from tests.auth.helpers import TEST_PASSWORD

LOGIN = "/api/v1/auth/login"


def _invoke(app: Flask, args: list[str], stdin: str) -> Any:
    return app.test_cli_runner().invoke(main, args, input=stdin)


def test_create_user_reads_the_password_from_stdin(
    app: Flask, db_session: Session, client: FlaskClient, make_office: Any
) -> None:
    make_office("kbl")
    result = _invoke(
        app,
        ["create-user", "Zainab", "--role", "caseworker", "--office", "kbl"],
        TEST_PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "created user zainab (caseworker)" in result.output
    assert TEST_PASSWORD not in result.output
    user = db_session.scalars(select(User).where(User.username == "zainab")).one()
    assert user.office_code == "kbl"
    entry = db_session.scalars(select(AuditEntry).where(AuditEntry.target == str(user.id))).one()
    assert (entry.action, entry.role) == ("user.create", "system")
    login = client.post(LOGIN, json={"username": "zainab", "password": TEST_PASSWORD})
    assert login.status_code == 200


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["create-user", "omar", "--role", "caseworker"], TEST_PASSWORD, "office"),
        (["create-user", "omar", "--role", "caseworker", "--office", "kbl"], "short", "password"),
        (["create-user", "omar", "--role", "admin", "--office", "kbl"], TEST_PASSWORD, "office"),
    ],
)
def test_create_user_refusals(
    app: Flask, db_session: Session, make_office: Any, args: list[str], stdin: str, message: str
) -> None:
    make_office("kbl")
    result = _invoke(app, args, stdin + "\n")
    assert result.exit_code == 1
    assert message in result.output
    assert db_session.scalar(select(User).where(User.username == "omar")) is None


def test_create_user_has_no_password_option(app: Flask) -> None:
    result = _invoke(app, ["create-user", "omar", "--role", "auditor", "--password", "x"], "")
    assert result.exit_code == 2


def test_init_creates_the_first_admin_once_with_a_generated_password(
    app: Flask,
    db_session: Session,
    client: FlaskClient,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CASEWORK_ADMIN_PASSWORD", raising=False)
    notice = first_admin_step(app)
    password = "\n".join(notice).split("shown only now: ")[1].split()[0]
    admin = db_session.scalars(select(User).where(User.username == "admin")).one()
    assert admin.role == "admin"
    assert admin.office_code is None
    assert first_admin_step(app) == []  # nothing changes, nothing is shown
    login = client.post(LOGIN, json={"username": "admin", "password": password})
    assert login.get_json()["mfa_enrolment_required"] is True


def test_init_takes_the_admin_password_from_the_environment(
    app: Flask,
    db_session: Session,
    client: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CASEWORK_ADMIN_PASSWORD", TEST_PASSWORD)
    notice = first_admin_step(app)
    assert TEST_PASSWORD not in "\n".join(notice)
    assert "CASEWORK_ADMIN_PASSWORD" in "\n".join(notice)
    login = client.post(LOGIN, json={"username": "admin", "password": TEST_PASSWORD})
    assert login.status_code == 200


def test_init_refuses_a_weak_admin_password(
    app: Flask, db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    import click

    monkeypatch.setenv("CASEWORK_ADMIN_PASSWORD", "admin")
    with pytest.raises(click.ClickException, match="CASEWORK_ADMIN_PASSWORD"):
        first_admin_step(app)


def test_the_keyring_step_runs_before_the_admin_step(app: Flask) -> None:
    steps = app.extensions["casework.init_steps"]
    names = [getattr(step, "__qualname__", "") for step in steps]
    assert len(steps) >= 2
    assert "security" in steps[0].__code__.co_filename
    assert any("auth" in step.__code__.co_filename for step in steps[1:]), names
    assert ensure_keyring(app) is False
