"""On SQLite a request that only reads starts deferred, outside the writer queue: its
access-log entry is appended afterwards by the log's group commit (case reads, reports)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from casework import create_app, db, migrate
from casework.authz.access import register_authenticator
from casework.cases.seeding import seed_cases
from casework.security.app import ensure_keyring
from tests.conftest import POSTGRES_URL, _test_principal_from_header, principal_headers

OFFICE = "rm-1"


@pytest.fixture(scope="module")
def own_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, list[str]]]:
    """An app on a SQLite file of its own: each request gets its own transaction."""
    folder: Path = tmp_path_factory.mktemp("read-mode")
    app = create_app({"database_url": f"sqlite:///{folder / 'casework.db'}",
                      "instance_path": str(folder)})  # fmt: skip
    app.config["TESTING"] = True
    register_authenticator(app, _test_principal_from_header)
    ensure_keyring(app)
    with app.app_context():
        engine = db.get_db().engine
        migrate.upgrade(engine)
        references = seed_cases(db.session(), count=3, office=OFFICE)
        db.session().commit()
        db.session().close()
    yield app, references
    engine.dispose()


def _transactions(app: Flask, request: Any) -> list[str]:
    """The BEGINs, COMMITs, ROLLBACKs and writes one request runs, in order."""
    seen: list[str] = []
    with app.app_context():
        engine = db.get_db().engine

    def statement(_conn: Any, _cursor: Any, text: str, *_: Any) -> None:
        if text.startswith(("BEGIN", "INSERT", "UPDATE", "DELETE")):
            seen.append(" ".join(text.split()[:3]))

    def commit(_conn: Any) -> None:
        seen.append("COMMIT")

    def rollback(_conn: Any) -> None:
        seen.append("ROLLBACK")

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    event.listen(engine, "rollback", rollback)
    try:
        assert request(app.test_client()).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)
        event.remove(engine, "rollback", rollback)
    return seen


# The read's snapshot changed nothing: it ends as a rollback, before the log's transaction.
READ_THEN_LOG = ["BEGIN", "ROLLBACK", "BEGIN IMMEDIATE", "INSERT INTO audit_log", "COMMIT"]


@pytest.mark.skipif(bool(POSTGRES_URL), reason="the deferred BEGIN is SQLite's")
@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_a_report_reads_in_a_deferred_transaction_like_a_case_read(
    own_app: tuple[Flask, list[str]], fmt: str
) -> None:
    app, references = own_app
    supervisor = principal_headers("supervisor", OFFICE)
    case_read = _transactions(
        app, lambda c: c.get(f"/api/v1/cases/{references[0]}", headers=supervisor)
    )
    report = _transactions(
        app,
        lambda c: c.get(f"/api/v1/reports/cases-by-office-stage?format={fmt}", headers=supervisor),
    )
    assert case_read == READ_THEN_LOG
    assert report == READ_THEN_LOG
