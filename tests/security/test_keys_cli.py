"""``casework keys status | rotate | retire`` against the real schema, on both backends.

Each test gets its own application and keyring file (never the shared test
app's), and every session the commands open is a savepoint on the test's
rolled-back connection, so each committed batch is visible to the test and
nothing outlives it.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from casework import create_app
from casework.audit.models import AuditEntry
from casework.auth.mfa import open_seed, seal_seed
from casework.auth.models import User
from casework.cli import main
from casework.db import get_db
from casework.keys import cli as keys_cli
from casework.security.app import ensure_keyring, holder
from casework.security.case_keys import attach_keyring, provision_case_key
from casework.security.envelope import new_data_key, wrap_data_key
from casework.security.keyring import Keyring
from casework.security.keyring_json import dump_keyring
from casework.security.models import CaseKey

from .sample_models import Member, SampleBase


def make_keys_app(app_config: dict[str, Any], folder: Path, connection: Connection) -> Flask:
    """An app with its own keyring file whose sessions are savepoints on ``connection``."""
    application = create_app({**app_config, "instance_path": str(folder / "instance")})
    ensure_keyring(application)

    def factory() -> Session:
        return Session(bind=connection, join_transaction_mode="create_savepoint")

    get_db(application).session_factory = factory  # type: ignore[assignment]
    return application


def keyring_of(application: Flask) -> Keyring:
    """The keyring as stored in the file now (the holder may cache for a second)."""
    return holder(application).provider.load()


def keyring_file(application: Flask) -> Path:
    return Path(application.instance_path) / "keyring.json"


def invoke(application: Flask, *args: str) -> Result:
    return application.test_cli_runner().invoke(main, list(args))


def seed_cases(connection: Connection, keyring: Keyring, count: int) -> dict[uuid.UUID, str]:
    """Provision ``count`` case keys, each with one encrypted member row; commit them.

    The sample member table is created on ``connection``: the test's rollback drops it.
    """
    SampleBase.metadata.tables[Member.__tablename__].create(connection, checkfirst=True)
    names = {}
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        attach_keyring(session, keyring)
        with session.no_autoflush:
            for i in range(count):
                case_id = uuid.uuid4()
                provision_case_key(session, case_id)
                names[case_id] = f"person {i}"
                session.add(Member(case_id=case_id, full_name=names[case_id]))
        session.commit()
    return names


def seed_mfa_users(connection: Connection, keyring: Keyring, count: int) -> dict[uuid.UUID, str]:
    """Staff users with TOTP seeds sealed under the active KEK; returns seed by user id."""
    seeds = {}
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        for i in range(count):
            user = User(id=uuid.uuid4(), username=f"keys-{uuid.uuid4().hex[:8]}-{i}", role="admin")
            user.password_hash = "not-a-real-hash"  # never used to sign in
            seeds[user.id] = f"JBSWY3DPEHPK3PX{i}"
            user.mfa_kek_id, user.mfa_secret = seal_seed(keyring, user.id, seeds[user.id])
            session.add(user)
        session.commit()
    return seeds


def read_names(connection: Connection, keyring: Keyring) -> dict[uuid.UUID, str | None]:
    """Decrypt every member's name with ``keyring``, as a fresh request would."""
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        attach_keyring(session, keyring)
        return {m.case_id: m.full_name for m in session.scalars(select(Member))}


def read_seeds(connection: Connection, keyring: Keyring) -> dict[uuid.UUID, str]:
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        users = session.scalars(select(User).where(User.mfa_secret.is_not(None)))
        return {
            u.id: open_seed(keyring, u.id, u.mfa_kek_id or "", u.mfa_secret or b"") for u in users
        }


def key_entries(connection: Connection) -> list[AuditEntry]:
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        query = select(AuditEntry).where(AuditEntry.action.like("keys.%"))
        return list(session.scalars(query.order_by(AuditEntry.seq)))


def status_json(application: Flask) -> dict[str, Any]:
    result = invoke(application, "keys", "status", "--json")
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.output)
    return document


def counts_by_kek(document: dict[str, Any]) -> dict[str, tuple[str, int, int]]:
    return {k["id"]: (k["state"], k["case_keys"], k["mfa_seeds"]) for k in document["keks"]}


@pytest.fixture
def keys_app(app_config: dict[str, Any], tmp_path: Path, connection: Connection) -> Flask:
    return make_keys_app(app_config, tmp_path, connection)


@pytest.fixture(autouse=True)
def no_reload_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """No live workers here: the last pass need not wait for them to reload the keyring."""
    monkeypatch.setattr(keys_cli, "RELOAD_GRACE_SECONDS", 0.0)


def write_stale_key(connection: Connection, stale: Keyring) -> uuid.UUID:
    """A worker that has not reloaded the keyring yet provisions a case under the old KEK."""
    case_id = uuid.UUID(int=1)  # sorts before every other case id
    wrapped = wrap_data_key(stale, new_data_key(), case_id)
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        session.add(CaseKey(case_id=case_id, kek_id=wrapped.kek_id, wrapped_key=wrapped.blob))
        session.commit()
    return case_id


def test_status_counts_keys_per_kek_and_lists_blind_index_roots(
    keys_app: Flask, connection: Connection
) -> None:
    keyring = keyring_of(keys_app)
    first = keyring.active_kek().kek_id
    seed_cases(connection, keyring, 3)
    seed_mfa_users(connection, keyring, 1)
    second = keyring.rotate().kek_id
    keyring.new_blind_index_root()
    holder(keys_app).save(keyring)
    seed_cases(connection, keyring, 2)

    document = status_json(keys_app)
    assert document["active_kek"] == second
    assert counts_by_kek(document) == {
        first: ("decrypt_only", 3, 1),
        second: ("active", 2, 0),
    }
    assert document["behind"] == {"case_keys": 3, "mfa_seeds": 1}
    assert document["unreadable"] == {"case_keys": 0, "mfa_seeds": 0}
    assert [(r["version"], r["current"]) for r in document["blind_index_roots"]] == [
        (1, False),
        (2, True),
    ]

    text = invoke(keys_app, "keys", "status")
    assert text.exit_code == 0, text.output
    assert f"{first}  decrypt_only" in text.output
    assert "behind the active KEK" in text.output
    assert "3 case keys, 1 MFA seeds" in text.output
    assert "version 2 (current)" in text.output
    for kek in keyring.keks:
        assert base64.b64encode(kek.key_bytes()).decode() not in text.output + str(document)


def test_status_names_rows_under_a_kek_missing_from_the_keyring(
    keys_app: Flask, connection: Connection
) -> None:
    stranger = Keyring.generate()  # e.g. a database restored beside the wrong keyring
    case_id = uuid.uuid4()
    wrapped = wrap_data_key(stranger, new_data_key(), case_id)
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        session.add(CaseKey(case_id=case_id, kek_id=wrapped.kek_id, wrapped_key=wrapped.blob))
        session.commit()
    document = status_json(keys_app)
    assert counts_by_kek(document)[wrapped.kek_id] == ("unknown", 1, 0)
    assert document["unreadable"] == {"case_keys": 1, "mfa_seeds": 0}
    assert document["behind"] == {"case_keys": 0, "mfa_seeds": 0}
    assert (
        "unreadable (destroyed or unknown KEK): 1 case keys"
        in invoke(keys_app, "keys", "status").output
    )


def test_rotate_with_nothing_to_re_wrap_then_retire(
    keys_app: Flask, connection: Connection
) -> None:
    old = keyring_of(keys_app).active_kek().kek_id
    result = invoke(keys_app, "keys", "rotate")
    assert result.exit_code == 0, result.output
    keyring = keyring_of(keys_app)
    new = keyring.active_kek().kek_id
    assert new != old
    assert f"KEK {new} is active; KEK {old} is decrypt-only" in result.output
    assert f"casework keys retire {old}" in result.output

    retired = invoke(keys_app, "keys", "retire", old)
    assert retired.exit_code == 0, retired.output
    assert counts_by_kek(status_json(keys_app))[old] == ("destroyed", 0, 0)
    entries = [(e.action, e.target, e.outcome, e.role) for e in key_entries(connection)]
    assert entries == [
        ("keys.rotate", f"kek:{new} from={old} behind=0", "success", "system"),
        ("keys.retire", f"kek:{old}", "success", "system"),
    ]


def test_the_last_pass_waits_for_workers_to_load_the_new_keyring(
    keys_app: Flask, connection: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = keyring_of(keys_app)
    waits: list[float] = []

    def worker_writes_meanwhile(deadline: float) -> None:
        waits.append(deadline - time.monotonic())
        write_stale_key(connection, stale)

    monkeypatch.setattr(keys_cli, "RELOAD_GRACE_SECONDS", 2.0)
    monkeypatch.setattr(keys_cli, "wait_for_workers", worker_writes_meanwhile)
    result = invoke(keys_app, "keys", "rotate")
    assert result.exit_code == 0, result.output
    assert len(waits) == 1
    assert 1.0 < waits[0] <= 2.0
    assert "re-wrapped under KEK" in result.output
    assert "1 case keys, 0 MFA seeds" in result.output
    assert status_json(keys_app)["behind"] == {"case_keys": 0, "mfa_seeds": 0}


def test_resume_with_nothing_behind_changes_nothing(
    keys_app: Flask, connection: Connection
) -> None:
    before = keyring_file(keys_app).read_bytes()
    result = invoke(keys_app, "keys", "rotate", "--resume")
    assert result.exit_code == 0, result.output
    assert "0 case keys, 0 MFA seeds" in result.output
    assert keyring_file(keys_app).read_bytes() == before
    assert key_entries(connection) == []


def test_retire_refuses_while_an_mfa_seed_uses_the_kek(
    keys_app: Flask, connection: Connection
) -> None:
    keyring = keyring_of(keys_app)
    old = keyring.active_kek().kek_id
    seeds = seed_mfa_users(connection, keyring, 1)
    keyring.rotate()
    holder(keys_app).save(keyring)  # rotated by hand: the seed was never re-sealed
    before = keyring_file(keys_app).read_bytes()

    result = invoke(keys_app, "keys", "retire", old)
    assert result.exit_code == 1
    assert f"KEK {old} still protects 1 MFA seeds" in result.output
    assert keyring_file(keys_app).read_bytes() == before
    (entry,) = key_entries(connection)
    assert (entry.action, entry.target, entry.outcome) == (
        "keys.retire",
        f"kek:{old} keys=0 seeds=1",
        "failure",
    )
    assert read_seeds(connection, keyring_of(keys_app)) == seeds


@pytest.mark.parametrize(
    ("which", "exit_code", "message"),
    [
        ("not-hex!", 2, "a KEK id is 8 lowercase hex digits"),
        ("0badc0de", 2, "no KEK with this id"),
        ("active", 2, "the active KEK cannot be retired: rotate first"),
    ],
)
def test_retire_refusals(keys_app: Flask, which: str, exit_code: int, message: str) -> None:
    kek_id = keyring_of(keys_app).active_kek().kek_id if which == "active" else which
    result = invoke(keys_app, "keys", "retire", kek_id)
    assert result.exit_code == exit_code
    assert message in result.output


def test_retiring_twice_is_refused(keys_app: Flask) -> None:
    old = keyring_of(keys_app).active_kek().kek_id
    assert invoke(keys_app, "keys", "rotate").exit_code == 0
    assert invoke(keys_app, "keys", "retire", old).exit_code == 0
    again = invoke(keys_app, "keys", "retire", old)
    assert again.exit_code == 2
    assert f"KEK {old} was destroyed" in again.output


def test_an_environment_keyring_is_read_only(
    app_config: dict[str, Any],
    tmp_path: Path,
    connection: Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keyring = Keyring.generate()
    monkeypatch.setenv("CASEWORK_KEYRING", dump_keyring(keyring))
    application = make_keys_app(app_config, tmp_path, connection)
    for args in (["rotate"], ["retire", keyring.active_kek().kek_id]):
        result = invoke(application, "keys", *args)
        assert result.exit_code == 2
        assert "keyring error" in result.output
        assert "read-only" in result.output
    assert invoke(application, "keys", "status").exit_code == 0
    assert invoke(application, "keys", "rotate", "--resume").exit_code == 0
    assert key_entries(connection) == []


@pytest.fixture
def held_lock(keys_app: Flask) -> Iterator[None]:
    path = keyring_file(keys_app).with_name("keyring.json.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield
    os.close(fd)


@pytest.mark.usefixtures("held_lock")
def test_a_second_key_command_waits_for_no_one(keys_app: Flask) -> None:
    before = keyring_file(keys_app).read_bytes()
    for args in (["rotate"], ["rotate", "--resume"], ["retire", "0badc0de"]):
        result = invoke(keys_app, "keys", *args)
        assert result.exit_code == 1
        assert "another casework keys command is running" in result.output
    assert keyring_file(keys_app).read_bytes() == before
