"""Commands: ``casework create-user`` and the first-admin step of ``casework init``.

Passwords never come from a command-line argument (they would sit in shell
history and in the process list): from standard input when it is not a
terminal, otherwise from a hidden prompt asked twice.
"""

from __future__ import annotations

import os
import sys

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from casework.auth import service
from casework.authz.permissions import STAFF_ROLES
from casework.db import get_db
from casework.errors import CaseworkError

ADMIN_PASSWORD_ENV = "CASEWORK_ADMIN_PASSWORD"  # noqa: S105 - a variable name


def _problem_text(exc: CaseworkError) -> str:
    errors = exc.extra.get("errors") or {}
    messages = [
        f"{field}: {message}"
        for fields in errors.values()
        for field, field_messages in fields.items()
        for message in field_messages
    ]
    return "; ".join(messages) or exc.detail


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    entered: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return entered


@click.command("create-user")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(STAFF_ROLES), help="The user's role.")
@click.option("--office", default=None, help="Office code (every role but admin and auditor).")
@with_appcontext
def create_user_command(username: str, role: str, office: str | None) -> None:
    """Create a staff account; the password is read from standard input or a prompt."""
    password = _read_password()
    session = get_db().session_factory()
    try:
        user = service.create_user(
            session, username=username, password=password, role=role, office_code=office
        )
        session.commit()
    except CaseworkError as exc:
        session.rollback()
        raise click.ClickException(_problem_text(exc)) from None
    finally:
        session.close()
    click.echo(f"created user {user.username} ({user.role}) with id {user.id}")


def first_admin_step(app: Flask | None = None) -> None:
    """``casework init``: create the user ``admin`` once.

    The password comes from CASEWORK_ADMIN_PASSWORD, or is generated and
    printed once. Running init again changes nothing.
    """
    application = app or current_app
    chosen = os.environ.get(ADMIN_PASSWORD_ENV) or None
    password = chosen or service.generate_password()
    session = get_db(application).session_factory()
    try:
        with application.app_context():
            created = service.ensure_first_admin(session, password)
        session.commit()
    except CaseworkError as exc:
        session.rollback()
        raise click.ClickException(f"{ADMIN_PASSWORD_ENV}: {_problem_text(exc)}") from None
    finally:
        session.close()
    if created is None:
        return
    if chosen:
        click.echo("created user admin with the password from CASEWORK_ADMIN_PASSWORD")
    else:
        click.echo(f"created user admin; its password, shown only now: {password}")
    click.echo("admin must enrol in MFA at the first sign-in (POST /api/v1/auth/mfa/enrol).")
