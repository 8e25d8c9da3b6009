"""``casework keys shred``: pending erasures, re-wrap under a fresh KEK, destroy the old ones.

Same harness as tests/security/test_keys_cli.py: each test has its own app and
keyring file, and every committed batch is a savepoint on the test's connection.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from casework import create_app
from casework.keys import service as keys_service
from casework.security.app import keyring_beside_database
from casework.security.keyring import KeyState, utc_now
from casework.security.models import ShredMark

from .test_keys_cli import (
    invoke,
    key_entries,
    keyring_of,
    make_keys_app,
    read_names,
    read_seeds,
    seed_cases,
    seed_mfa_users,
    status_json,
)


@pytest.fixture
def keys_app(app_config: dict[str, Any], tmp_path: Path, connection: Connection) -> Flask:
    return make_keys_app(app_config, tmp_path, connection)


def mark_erasure(connection: Connection, kek_id: str, hours_ago: float = 0) -> None:
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        session.add(ShredMark(kek_id=kek_id, marked_at=utc_now() - timedelta(hours=hours_ago)))
        session.commit()


def test_shred_rewraps_every_key_and_seed_then_destroys_the_old_kek(
    keys_app: Flask, connection: Connection
) -> None:
    keyring = keyring_of(keys_app)
    old = keyring.active_kek().kek_id
    names = seed_cases(connection, keyring, 30)
    seeds = seed_mfa_users(connection, keyring, 2)
    assert status_json(keys_app)["pending_shred"] == 0
    mark_erasure(connection, old)
    before = status_json(keys_app)
    assert before["pending_shred"] == 1
    assert before["oldest_pending_shred"] is not None
    assert "pending shred: 1 erasure(s)" in invoke(keys_app, "keys", "status").output

    result = invoke(keys_app, "keys", "shred", "--batch-size", "7")
    assert result.exit_code == 0, result.output
    assert f"destroyed KEK(s): {old}" in result.output

    after = keyring_of(keys_app)
    states = {k.kek_id: k.state for k in after.keks}
    assert states[old] is KeyState.DESTROYED
    assert after.active_kek().kek_id != old
    assert read_names(connection, after) == names
    assert read_seeds(connection, after) == seeds
    assert status_json(keys_app)["pending_shred"] == 0
    with Session(bind=connection) as session:
        assert session.scalars(select(ShredMark)).all() == []
    actions = [entry.action for entry in key_entries(connection)]
    assert actions.count("keys.shred") == 2
    assert "keys.rotate" in actions
    assert "keys.retire" in actions


def test_if_due_waits_for_the_configured_delay(keys_app: Flask, connection: Connection) -> None:
    keyring = keyring_of(keys_app)
    old = keyring.active_kek().kek_id
    seed_cases(connection, keyring, 3)
    keys_app.config["CASEWORK"]["shred_after_hours"] = 12
    mark_erasure(connection, old, hours_ago=1)
    early = invoke(keys_app, "keys", "shred", "--if-due")
    assert early.exit_code == 0, early.output
    assert "no shred due (1 erasure(s) pending)" in early.output
    assert keyring_of(keys_app).active_kek().kek_id == old
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        session.execute(update(ShredMark).values(marked_at=utc_now() - timedelta(hours=13)))
        session.commit()
    due = invoke(keys_app, "keys", "shred", "--if-due")
    assert due.exit_code == 0, due.output
    assert {k.kek_id: k.state for k in keyring_of(keys_app).keks}[old] is KeyState.DESTROYED
    assert status_json(keys_app)["pending_shred"] == 0


class Crash(Exception):
    """Stands for the process dying after the re-wrap, before the old KEK is destroyed."""


def test_an_interrupted_shred_resumes_without_another_kek(
    keys_app: Flask, connection: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring = keyring_of(keys_app)
    old = keyring.active_kek().kek_id
    names = seed_cases(connection, keyring, 12)
    mark_erasure(connection, old)

    def crash(*_args: Any, **_kwargs: Any) -> Any:
        raise Crash

    with monkeypatch.context() as patch:
        patch.setattr(keys_service, "finish_shred", crash)
        interrupted = invoke(keys_app, "keys", "shred")
    assert isinstance(interrupted.exception, Crash)
    halfway = keyring_of(keys_app)
    assert len(halfway.keks) == 2
    assert status_json(keys_app)["pending_shred"] == 1  # the old KEK is still readable

    resumed = invoke(keys_app, "keys", "shred")
    assert resumed.exit_code == 0, resumed.output
    final = keyring_of(keys_app)
    assert len(final.keks) == 2  # no third KEK: the resume only finished the job
    assert final.active_kek().kek_id == halfway.active_kek().kek_id
    assert {k.kek_id: k.state for k in final.keks}[old] is KeyState.DESTROYED
    assert read_names(connection, final) == names
    assert status_json(keys_app)["pending_shred"] == 0


def test_an_erasure_during_a_shred_stays_pending_for_the_next(
    keys_app: Flask, connection: Connection
) -> None:
    """An erasure marked under the fresh KEK may sit in a backup wrapped under it."""
    keyring = keyring_of(keys_app)
    seed_cases(connection, keyring, 2)
    mark_erasure(connection, keyring.active_kek().kek_id)
    assert invoke(keys_app, "keys", "shred").exit_code == 0
    fresh = keyring_of(keys_app).active_kek().kek_id
    mark_erasure(connection, fresh)
    assert status_json(keys_app)["pending_shred"] == 1
    assert invoke(keys_app, "keys", "shred").exit_code == 0
    assert status_json(keys_app)["pending_shred"] == 0
    assert json.loads(invoke(keys_app, "keys", "status", "--json").output)["active_kek"] != fresh


def test_start_up_warns_when_the_keyring_sits_beside_the_sqlite_file(
    app_config: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "instance"
    together = {"database_url": "", "instance_path": str(folder)}
    logger = logging.getLogger("casework")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="casework"):
            beside = create_app({**app_config, **together})
        assert any("keyring file is in the database's folder" in r.message for r in caplog.records)
        caplog.clear()
        apart = {**together, "keyring_path": str(tmp_path / "keys" / "keyring.json")}
        with caplog.at_level(logging.WARNING, logger="casework"):
            elsewhere = create_app({**app_config, **apart})
        assert not any("keyring file is in" in r.message for r in caplog.records)
    finally:
        logger.removeHandler(caplog.handler)
    assert keyring_beside_database(beside, beside.extensions["casework.keyring"].provider)
    assert not keyring_beside_database(elsewhere, elsewhere.extensions["casework.keyring"].provider)


def test_seal_rows_gives_rows_from_before_the_upgrade_their_first_seal(
    keys_app: Flask, connection: Connection
) -> None:
    from casework.cases.models import CaseMember
    from casework.cases.service import bulk_register
    from casework.offices.models import Office
    from casework.security.case_keys import attach_keyring
    from casework.security.errors import RowIntegrityError

    keyring = keyring_of(keys_app)
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        session.add(Office(code="seal-01", name="Seal office", country_code="JOR"))
        attach_keyring(session, keyring)
        body = {"members": [{"relationship": "principal_applicant", "full_name": "Old Row"}]}
        bulk_register(session, "seal-01", [body, body])
        session.commit()
    members = CaseMember.__table__
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        session.execute(update(members).values(row_seal=None))  # as migration 0012 leaves them
        session.commit()

    def names() -> list[str | None]:
        with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
            attach_keyring(session, keyring)
            return [m.full_name for m in session.scalars(select(CaseMember))]

    with pytest.raises(RowIntegrityError):
        names()
    result = invoke(keys_app, "keys", "seal-rows", "--batch-size", "1")
    assert result.exit_code == 0, result.output
    assert "sealed 2 row(s)" in result.output
    assert names() == ["Old Row", "Old Row"]
    assert "keys.seal_rows" in [entry.action for entry in key_entries(connection)]
