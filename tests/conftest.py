"""Shared fixtures: one migrated database per run, one rolled-back transaction per test.

Set ``CASEWORK_TEST_DATABASE_URL`` to run the whole suite on PostgreSQL; by
default it runs on a SQLite file in a temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from flask.testing import FlaskClient
from sqlalchemy import event, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

os.environ.setdefault("CASEWORK_ENV", "test")

from casework import create_app, migrate
from casework.authz.access import Principal, register_authenticator
from casework.db import get_db, make_engine
from casework.offices.models import Office
from casework.security.app import ensure_keyring
from casework.security.columns import EncryptedField

POSTGRES_URL = os.environ.get("CASEWORK_TEST_DATABASE_URL", "")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if POSTGRES_URL:
        return POSTGRES_URL
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'casework.db'}"


@pytest.fixture(scope="session")
def instance_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("instance")


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def app_config(database_url: str, instance_path: Path) -> dict[str, Any]:
    return {"database_url": database_url, "instance_path": str(instance_path)}


@pytest.fixture(scope="session")
def app(engine: Engine, app_config: dict[str, Any]) -> Flask:
    application = create_app(app_config)
    application.config["TESTING"] = True
    ensure_keyring(application)
    register_authenticator(application, _test_principal_from_header)
    return application


# Tests of features other than login act as a principal named in a header, so
# they need no users or tokens. Only the test app registers this authenticator;
# the identity tests exercise real tokens.
TEST_PRINCIPAL_HEADER = "X-Test-Principal"


def _test_principal_from_header() -> Principal | None:
    value = request.headers.get(TEST_PRINCIPAL_HEADER)
    if not value:
        return None
    role, office, user_id = value.split(";")
    return Principal.for_role(role, user_id=user_id, office=office or None)


def principal_headers(
    role: str,
    office: str | None = None,
    user_id: str | None = None,
) -> dict[str, str]:
    """Headers that make a test request act as ``role`` in ``office``."""
    who = user_id or f"test-{role}-{office or 'none'}"
    return {TEST_PRINCIPAL_HEADER: f"{role};{office or ''};{who}"}


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """An outer transaction that every session of the test joins, rolled back after."""
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        outer.rollback()


@pytest.fixture
def db_session(app: Flask, connection: Connection) -> Iterator[Session]:
    """A session for the test body; requests get their own on the same connection."""

    def factory() -> Session:
        return Session(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )

    database = get_db(app)
    original = database.session_factory
    database.session_factory = factory  # type: ignore[assignment]
    session = factory()
    yield session
    session.close()
    database.session_factory = original


@pytest.fixture
def client(app: Flask, db_session: Session) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_office(db_session: Session) -> Any:
    """Create (and flush) an office; returns its code."""

    def make(
        code: str = "kbl", name: str = "Test office", country: str = "AFG", mfa_exempt: bool = False
    ) -> str:
        db_session.add(Office(code=code, name=name, country_code=country, mfa_exempt=mfa_exempt))
        db_session.flush()
        return code

    return make


@pytest.fixture
def make_user(app: Flask, db_session: Session) -> Any:
    """Create (and flush) a user with a real password hash; returns the ``User``.

    ``make_user(role, office=None, *, username=None, password=..., mfa=None,
    active=True)``; roles that require MFA come enrolled (see tests/auth/helpers.py).
    """
    from tests.auth.helpers import create_user

    def make(role: str, office: str | None = None, **kwargs: Any) -> Any:
        return create_user(app, db_session, role, office, **kwargs)

    return make


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement run on the test database while the test goes on."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def login_headers(app: Flask, client: FlaskClient, db_session: Session) -> Any:
    """``login_headers(user)`` -> ``{"Authorization": "Bearer ..."}`` from a real login,
    answering or enrolling in MFA where required."""
    from tests.auth.helpers import login_headers as sign_in

    def headers(user: Any, **kwargs: Any) -> dict[str, str]:
        return sign_in(app, client, db_session, user, **kwargs)

    return headers


def stored_ciphertexts(session: Session, model: type[Any]) -> list[bytes | None]:
    """Every encrypted column value of every row of ``model``'s table, read raw (no ORM)."""
    table = model.__table__
    names = [
        value.name_in_table
        for klass in model.__mro__
        for value in vars(klass).values()
        if isinstance(value, EncryptedField)
    ]
    rows = session.execute(select(*(table.c[name] for name in names))).all()
    assert rows, f"no {table.name} rows"
    return [value for row in rows for value in row]


def erase_by_two_people(
    client: FlaskClient,
    reference: str,
    requester: dict[str, str],
    approver: dict[str, str],
    reason: str = "The person asked for their record to be erased.",
) -> Any:
    """Erase a case the only way there is: one supervisor requests, another approves.

    Returns the approval's response (200 when the case was erased)."""
    made = client.post(
        f"/api/v1/cases/{reference}/erasure-requests", json={"reason": reason}, headers=requester
    )
    if made.status_code != 201:
        return made
    return client.post(
        f"/api/v1/erasure-requests/{made.get_json()['id']}/approve",
        headers={**approver, "If-Match": made.headers["ETag"]},
    )
