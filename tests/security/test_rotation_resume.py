"""A KEK rotation interrupted half-way resumes, and no case or MFA seed is lost.

Interruptions are simulated three ways: an exception between two committed
batches, an exception in the middle of a batch (its work must roll back), and
a real process killed with SIGKILL in the middle of a batch.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import Session

from casework import create_app, migrate
from casework.cases.models import Case, CaseMember
from casework.cases.reference import new_reference
from casework.db import make_engine
from casework.keys import cli as keys_cli
from casework.keys import rotation
from casework.keys.cli import Progress, rewrap_all
from casework.offices.models import Office
from casework.security.app import ensure_keyring, holder
from casework.security.case_keys import attach_keyring, provision_case_key
from casework.security.keyring import utc_now
from casework.security.models import ShredMark

from .test_keys_cli import (
    counts_by_kek,
    invoke,
    key_entries,
    keyring_file,
    keyring_of,
    make_keys_app,
    read_names,
    read_seeds,
    seed_cases,
    seed_mfa_users,
    status_json,
    write_stale_key,
)

CASES = 1000
BATCH = "100"
REPO = Path(__file__).resolve().parents[2]


class Crash(Exception):
    """Stands for the process dying."""


@pytest.fixture
def keys_app(app_config: dict[str, Any], tmp_path: Path, connection: Connection) -> Flask:
    return make_keys_app(app_config, tmp_path, connection)


@pytest.fixture(autouse=True)
def no_reload_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys_cli, "RELOAD_GRACE_SECONDS", 0.0)


def test_rotation_killed_between_batches_resumes_and_every_case_decrypts(
    keys_app: Flask, connection: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring = keyring_of(keys_app)
    old = keyring.active_kek().kek_id
    old_material = base64.b64encode(keyring.kek(old).key_bytes()).decode()
    names = seed_cases(connection, keyring, CASES)
    seeds = seed_mfa_users(connection, keyring, 2)

    def die_after_five(progress: Progress) -> None:
        if progress.batch == 5:
            raise Crash

    monkeypatch.setattr(keys_cli, "_print_progress", die_after_five)
    crashed = invoke(keys_app, "keys", "rotate", "--batch-size", BATCH)
    assert isinstance(crashed.exception, Crash)
    monkeypatch.undo()

    new = keyring_of(keys_app).active_kek().kek_id
    document = status_json(keys_app)
    assert counts_by_kek(document) == {old: ("decrypt_only", 500, 2), new: ("active", 500, 0)}
    assert document["behind"] == {"case_keys": 500, "mfa_seeds": 2}
    assert read_names(connection, keyring_of(keys_app)) == names  # half-way, all readable

    refused = invoke(keys_app, "keys", "retire", old)
    assert refused.exit_code == 1
    assert "still protects 500 case keys and 2 MFA seeds" in refused.output
    again = invoke(keys_app, "keys", "rotate")
    assert again.exit_code == 1
    assert "an earlier rotation is unfinished" in again.output
    assert keyring_of(keys_app).active_kek().kek_id == new  # no third KEK

    resumed = invoke(keys_app, "keys", "rotate", "--resume", "--batch-size", BATCH)
    assert resumed.exit_code == 0, resumed.output
    assert "case keys: batch 1, 100 re-wrapped, 400 behind" in resumed.output
    assert "case keys: batch 5, 500 re-wrapped, 0 behind" in resumed.output
    assert "MFA seeds: batch 1, 2 re-wrapped, 0 behind" in resumed.output
    assert f"destroy it with: casework keys retire {old}" in resumed.output
    document = status_json(keys_app)
    assert counts_by_kek(document) == {old: ("decrypt_only", 0, 0), new: ("active", CASES, 2)}
    assert document["behind"] == {"case_keys": 0, "mfa_seeds": 0}

    retired = invoke(keys_app, "keys", "retire", old)
    assert retired.exit_code == 0, retired.output
    stored = json.loads(keyring_file(keys_app).read_text())
    assert [k for k in stored["keks"] if k["id"] == old] == [
        {
            "id": old,
            "state": "destroyed",
            "created_at": stored["keks"][0]["created_at"],
            "material": None,
        }
    ]
    assert old_material not in keyring_file(keys_app).read_text()
    assert read_names(connection, keyring_of(keys_app)) == names
    assert read_seeds(connection, keyring_of(keys_app)) == seeds

    entries = [(e.action, e.target, e.outcome, e.fields) for e in key_entries(connection)]
    assert entries == [
        ("keys.rotate", f"kek:{new} from={old} behind={CASES + 2}", "success", "[]"),
        ("keys.retire", f"kek:{old} keys=500 seeds=2", "failure", "[]"),
        (
            "keys.rotate",
            f"kek:{new} keys=500 seeds=2 left=0",
            "success",
            '["case_keys.kek_id", "case_keys.wrapped_key", "users.mfa_kek_id", "users.mfa_secret"]',
        ),
        ("keys.retire", f"kek:{old}", "success", "[]"),
    ]


def test_real_cases_stay_readable_through_an_interrupted_rotation(
    keys_app: Flask, connection: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring = keyring_of(keys_app)
    old = keyring.active_kek().kek_id
    expected = {}
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        attach_keyring(session, keyring)
        session.add(Office(code="rot", name="Rotation office", country_code="AFG"))
        session.flush()
        with session.no_autoflush:
            for i in range(60):
                needs = ["SM-MI"] if i % 2 else []
                case = Case(office_code="rot", reference=new_reference(), specific_needs=needs)
                session.add(case)
                provision_case_key(session, case.id)
                name = f"member {i}"
                session.add(
                    CaseMember(case_id=case.id, position=0, relationship="pa", full_name=name)
                )
                expected[case.id] = (needs, name)
        session.commit()

    def die_after_two(progress: Progress) -> None:
        if progress.batch == 2:
            raise Crash

    monkeypatch.setattr(keys_cli, "_print_progress", die_after_two)
    assert isinstance(invoke(keys_app, "keys", "rotate", "--batch-size", "20").exception, Crash)
    monkeypatch.undo()
    assert invoke(keys_app, "keys", "rotate", "--resume", "--batch-size", "20").exit_code == 0
    assert invoke(keys_app, "keys", "retire", old).exit_code == 0

    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        attach_keyring(session, keyring_of(keys_app))
        found = {
            case.id: (case.specific_needs, member.full_name)
            for case, member in session.execute(
                select(Case, CaseMember).join(CaseMember, CaseMember.case_id == Case.id)
            )
        }
    assert found == expected


def test_a_batch_cut_short_rolls_back_and_is_redone(
    keys_app: Flask, connection: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring = keyring_of(keys_app)
    old = keyring.active_kek().kek_id
    names = seed_cases(connection, keyring, 250)
    real_rewrap, calls = rotation.rewrap, 0

    def fail_in_third_batch(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 250:
            raise Crash
        return real_rewrap(*args)

    monkeypatch.setattr(rotation, "rewrap", fail_in_third_batch)
    crashed = invoke(keys_app, "keys", "rotate", "--batch-size", BATCH)
    assert isinstance(crashed.exception, Crash)
    monkeypatch.undo()
    new = keyring_of(keys_app).active_kek().kek_id
    assert counts_by_kek(status_json(keys_app)) == {
        old: ("decrypt_only", 50, 0),
        new: ("active", 200, 0),
    }
    assert invoke(keys_app, "keys", "rotate", "--resume").exit_code == 0
    assert counts_by_kek(status_json(keys_app))[new] == ("active", 250, 0)
    assert read_names(connection, keyring_of(keys_app)) == names


def test_a_key_written_behind_the_cursor_is_still_re_wrapped(
    keys_app: Flask, connection: Connection
) -> None:
    keyring = keyring_of(keys_app)
    stale = keyring_of(keys_app)  # a worker that has not reloaded the keyring yet
    seed_cases(connection, keyring, 30)
    keyring.rotate()
    holder(keys_app).save(keyring)

    def late_write(progress: Progress) -> None:
        if progress.batch == 1:
            write_stale_key(connection, stale)

    done = rewrap_all(keys_app, keyring, batch_size=10, on_batch=late_write)
    assert done == {"case_keys": 31, "mfa_seeds": 0}
    assert status_json(keys_app)["behind"] == {"case_keys": 0, "mfa_seeds": 0}


def test_keys_under_a_destroyed_kek_do_not_stall_the_job(
    keys_app: Flask, connection: Connection
) -> None:
    keyring = keyring_of(keys_app)
    first = keyring.active_kek().kek_id
    seed_cases(connection, keyring, 2)
    keyring.rotate()
    seed_cases(connection, keyring, 3)
    keyring.rotate()
    keyring.retire(first)  # as if a backup from before its retirement had been restored
    holder(keys_app).save(keyring)
    result = invoke(keys_app, "keys", "rotate", "--resume", "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert "re-wrapped under KEK" in result.output
    assert "3 case keys, 0 MFA seeds" in result.output
    assert "warning: 2 case keys, 0 MFA seeds sit under a destroyed or unknown KEK" in result.output
    document = status_json(keys_app)
    assert document["unreadable"] == {"case_keys": 2, "mfa_seeds": 0}
    assert document["behind"] == {"case_keys": 0, "mfa_seeds": 0}


# A real process, killed with SIGKILL in its fifth batch: no Python clean-up runs,
# so only what the database committed survives. It needs a database of its own.

_KILLED_CLI = textwrap.dedent(
    """
    import os, signal, sys
    from casework.cli import main
    from casework.keys import rotation
    real, calls = rotation.rewrap, [0]
    def rewrap(*args):
        calls[0] += 1
        if calls[0] == 450:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args)
    rotation.rewrap = rewrap
    main(["keys", sys.argv[1], "--batch-size", "100"])
    """
)


@pytest.fixture
def scratch_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of the backend under test, dropped afterwards."""
    if not database_url.startswith("postgresql"):
        url = f"sqlite:///{tmp_path / 'killed.db'}"
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url
        return
    name = f"casework_keys_{uuid.uuid4().hex[:10]}"
    admin = make_engine(database_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(database_url).set(database=name).render_as_string(False)
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.mark.parametrize("command", ["rotate", "shred"])
def test_a_killed_process_resumes(scratch_url: str, tmp_path: Path, command: str) -> None:
    """Killed in its fifth batch, a rotation or a shred leaves every key openable with the
    keyring file as it is on disk (committed batches under the new KEK, saved before
    them; the rest under the old one, still there), and running it again finishes."""
    instance = tmp_path / "instance"
    application = create_app({"database_url": scratch_url, "instance_path": str(instance)})
    ensure_keyring(application)
    keyring = keyring_of(application)
    old = keyring.active_kek().kek_id
    engine: Engine = make_engine(scratch_url)
    with engine.begin() as connection:
        names = seed_cases(connection, keyring, CASES)
        connection.execute(insert(ShredMark.__table__), [{"kek_id": old, "marked_at": utc_now()}])

    environment = {k: v for k, v in os.environ.items() if k != "CASEWORK_KEYRING"}
    environment |= {
        "CASEWORK_ENV": "test",
        "CASEWORK_DATABASE_URL": scratch_url,
        "CASEWORK_INSTANCE_PATH": str(instance),
    }
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_CLI, command],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert "case keys: batch 4, 400 re-wrapped, 600 behind" in killed.stdout
    assert "batch 5" not in killed.stdout

    on_disk = keyring_of(application)  # the file the dead process left
    new = on_disk.active_kek().kek_id
    document = status_json(application)
    assert counts_by_kek(document) == {old: ("decrypt_only", 600, 0), new: ("active", 400, 0)}
    with engine.begin() as connection:
        assert read_names(connection, on_disk) == names
    if command == "rotate":
        resumed = invoke(application, "keys", "rotate", "--resume", "--batch-size", BATCH)
        assert resumed.exit_code == 0, resumed.output  # the dead process's file lock is gone
        assert invoke(application, "keys", "retire", old).exit_code == 0
    else:
        resumed = invoke(application, "keys", "shred", "--batch-size", BATCH)
        assert resumed.exit_code == 0, resumed.output
        assert f"destroyed KEK(s): {old}" in resumed.output
    assert keyring_of(application).active_kek().kek_id == new  # no further KEK
    with engine.begin() as connection:
        assert read_names(connection, keyring_of(application)) == names
    engine.dispose()
    application.extensions["casework.db"].engine.dispose()
