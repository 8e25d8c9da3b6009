"""Appends from many threads, each committed for real, make one gapless chain that verifies.

Runs on a scratch database of the backend under test (a SQLite file, or a
PostgreSQL database created and dropped here), not in the rolled-back test
transaction: serialisation only shows when transactions really commit.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from casework import audit, create_app, migrate
from casework.audit import signer, store
from casework.audit.models import AuditCheckpoint, AuditEntry
from casework.db import get_db, make_engine
from tests.audit.helpers import actor_for

THREADS = 8
APPENDS = 250


@pytest.fixture
def scratch_app(
    database_url: str, instance_path: Path, tmp_path: Path, app: Flask
) -> Iterator[Flask]:
    """An application on an empty, migrated database of the backend under test."""
    name = f"casework_audit_{uuid.uuid4().hex[:10]}"
    postgres = database_url.startswith("postgresql")
    if postgres:
        admin = make_engine(database_url).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
            # Commits still serialise and become visible as in production; they
            # just skip the wait for the disk, which is not under test here.
            connection.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
        url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{tmp_path / 'concurrent.db'}"
    # The shared instance folder holds the test keyring (the ``app`` fixture made it).
    scratch = create_app(
        {"database_url": url, "instance_path": str(instance_path), "audit_checkpoint_every": 100}
    )
    engine = get_db(scratch).engine
    if not postgres:
        event.listen(engine, "connect", _skip_fsync)  # runs after casework's own pragmas
    migrate.upgrade(engine)
    yield scratch
    get_db(scratch).engine.dispose()
    if postgres:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}"'))
        admin.dispose()


def _skip_fsync(dbapi_connection: Any, _record: Any) -> None:
    """WAL with synchronous=NORMAL: same locking (``BEGIN IMMEDIATE``), no fsync per commit."""
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _append(app: Flask, worker: int, errors: list[BaseException]) -> None:
    try:
        factory = get_db(app).session_factory
        with app.app_context():
            for n in range(APPENDS):
                with factory() as session:
                    audit.record(
                        audit.AuditAction.CASE_READ,
                        target=f"REF{worker:02d}{n:06d}",
                        fields=["family_name"],
                        actor=actor_for(worker),
                        session=session,
                    )
                    session.commit()
    except BaseException as error:  # reported by the main thread
        errors.append(error)


def test_threads_append_one_gapless_chain_that_verifies(scratch_app: Flask) -> None:
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_append, args=(scratch_app, worker, errors))
        for worker in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, [type(e).__name__ for e in errors]
    factory = get_db(scratch_app).session_factory
    with factory() as session:
        seqs = list(session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)))
        targets = session.scalar(select(func.count(func.distinct(AuditEntry.target))))
        sizes = list(session.scalars(select(AuditCheckpoint.size).order_by(AuditCheckpoint.size)))
    assert seqs == list(range(1, THREADS * APPENDS + 1))
    assert targets == THREADS * APPENDS  # every append landed, none twice
    assert sizes == [1, *range(101, THREADS * APPENDS + 1, 100)]
    with scratch_app.app_context():
        with factory() as session:
            state = store.log_state(session)
        result = store.verify_stored(state, store.in_short_sessions(factory), signer.log_identity())
    assert (result.ok, result.entries, result.checkpoints) == (True, 2000, len(sizes)), result


def test_the_database_refuses_update_delete_and_truncate(scratch_app: Flask) -> None:
    """The append-only triggers, with real commits and no ORM in the way.

    PostgreSQL's statement triggers (0002, 0006) also refuse TRUNCATE; SQLite's
    row triggers (0006) stop UPDATE and DELETE.
    """
    engine = get_db(scratch_app).engine
    with scratch_app.app_context(), get_db(scratch_app).session_factory() as session:
        audit.record(audit.AuditAction.CASE_READ, target="REF1", session=session)
        session.commit()
    statements = [
        "UPDATE audit_log SET actor = 'someone-else'",
        "DELETE FROM audit_log",
        "UPDATE audit_checkpoints SET note = 'forged'",
        "DELETE FROM audit_checkpoints",
    ]
    if engine.dialect.name == "postgresql":
        statements += ["TRUNCATE audit_log", "TRUNCATE audit_checkpoints"]
    for statement in statements:
        with engine.connect() as connection, pytest.raises(DBAPIError, match="append-only"):
            connection.execute(text(statement))
    with engine.connect() as connection:
        counts: Any = connection.execute(
            text(
                "SELECT (SELECT count(*) FROM audit_log), (SELECT count(*) FROM audit_checkpoints)"
            )
        ).one()
    assert tuple(counts) == (1, 1)
