"""A throw-away service with its own database, keyring and real commits.

The shared fixtures run every test in a rolled-back transaction on one
connection; tests that need what a deployment really writes (the SQLite file
and its WAL, a PostgreSQL table dump, concurrent sessions, a keyring file a
command rewrites) use this instead. On PostgreSQL it creates a database named
after the test database, and drops it afterwards.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from sqlalchemy import text
from sqlalchemy.engine import make_url

from casework import create_app, migrate
from casework.authz.access import register_authenticator
from casework.db import get_db, make_engine
from casework.offices.models import Office
from casework.security.app import ensure_keyring
from tests.conftest import _test_principal_from_header


@dataclass
class Scratch:
    app: Flask
    url: str
    sqlite_file: Path | None

    @property
    def backend(self) -> str:
        return "sqlite" if self.sqlite_file else "postgresql"

    def add_office(self, code: str) -> str:
        with get_db(self.app).session_factory() as session:
            session.add(Office(code=code, name=f"Office {code}", country_code="JOR"))
            session.commit()
        return code


@contextlib.contextmanager
def scratch_service(test_database_url: str, folder: Path) -> Iterator[Scratch]:
    """A migrated database and an app on it; the test-principal header authenticates."""
    instance = folder / "instance"
    with _database(test_database_url, folder) as (url, sqlite_file):
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        app = create_app({"database_url": url, "instance_path": str(instance)})
        app.config["TESTING"] = True
        ensure_keyring(app)
        register_authenticator(app, _test_principal_from_header)
        try:
            yield Scratch(app, url, sqlite_file)
        finally:
            get_db(app).engine.dispose()


@contextlib.contextmanager
def _database(test_database_url: str, folder: Path) -> Iterator[tuple[str, Path | None]]:
    if not test_database_url.startswith("postgresql"):
        path = folder / "scratch.db"
        yield f"sqlite:///{path}", path
        return
    base = make_url(test_database_url)
    name = f"{base.database}_scratch_{uuid.uuid4().hex[:8]}"
    admin = make_engine(test_database_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False), None
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
