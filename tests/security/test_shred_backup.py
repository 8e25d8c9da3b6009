"""An erased case cannot be recovered from a copy of the database taken before the erasure.

On both backends, with real commits: cases full of canary values and a staff
member's MFA seed; a copy of the database (SQLite: the file; PostgreSQL: a
``pg_dump`` restored elsewhere and, when the data directory is readable, a
copy of the ``case_keys`` relation file); then one case is erased by two
supervisors. Until ``casework keys shred`` runs, the old copy and the current
keyring still open the erased case (the threat; the status shows it pending).
After the shred, with the current keyring, no wrapped key and no MFA seed of
the copy opens, no ciphertext of the erased case opens under any key we can
get, and every other case still decrypts (live, and in the copy with the live
case keys: re-wrapping never changes a data key).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine, make_url

from casework.auth.mfa import open_seed, seal_seed
from casework.auth.models import User
from casework.cases.models import Case, CaseMember
from casework.db import get_db, make_engine
from casework.security.app import holder
from casework.security.envelope import (
    DataKey,
    FieldContext,
    WrappedKey,
    decrypt_field,
    unwrap_data_key,
)
from casework.security.errors import SecurityError
from casework.security.keyring import Keyring
from casework.security.models import CaseKey
from tests.cases.scratch import Scratch, scratch_service
from tests.conftest import erase_by_two_people
from tests.security.test_leaks import Canaries, household

OFFICE = "shred-01"
CASES = "/api/v1/cases"
WORKER = {"X-Test-Principal": f"caseworker;{OFFICE};shred-worker"}
SUP1 = {"X-Test-Principal": f"supervisor;{OFFICE};shred-sup-1"}
SUP2 = {"X-Test-Principal": f"supervisor;{OFFICE};shred-sup-2"}
SEALED_MEMBER_COLUMNS = ("full_name", "narrative", "phone", "address", "documents")


@pytest.fixture
def scratch(database_url: str, tmp_path: Path) -> Iterator[Scratch]:
    with scratch_service(database_url, tmp_path) as service:
        service.add_office(OFFICE)
        yield service


def register(scratch: Scratch, canary: Canaries) -> str:
    created = scratch.app.test_client().post(CASES, json=household(canary), headers=WORKER)
    assert created.status_code == 201, created.get_json()
    reference: str = created.get_json()["reference"]
    return reference


def add_mfa_user(scratch: Scratch) -> tuple[uuid.UUID, str]:
    seed = "JBSWY3DPEHPK3PXPSHRED"
    with get_db(scratch.app).session_factory() as session:
        user = User(id=uuid.uuid4(), username="shred-admin", role="admin")
        user.password_hash = "not-a-real-hash"  # never used to sign in
        user.mfa_kek_id, user.mfa_secret = seal_seed(holder(scratch.app).get(), user.id, seed)
        session.add(user)
        session.commit()
        return user.id, seed


# --- copies of the database -------------------------------------------------------------


def copy_database(scratch: Scratch, folder: Path) -> tuple[Engine, Any]:
    """A copy of the database as a backup would hold it, and a disposer."""
    if scratch.sqlite_file is not None:
        copy = folder / "backup.db"
        source, target = sqlite3.connect(scratch.sqlite_file), sqlite3.connect(copy)
        source.backup(target)  # a consistent copy of the file with its WAL folded in
        source.close()
        target.close()
        engine = make_engine(f"sqlite:///{copy}")
        return engine, engine.dispose
    url = make_url(scratch.url)
    dump = folder / "backup.sql"
    conninfo = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username]
    subprocess.run(["pg_dump", *conninfo, "--no-owner", "-f", str(dump), url.database], check=True)
    name = f"{url.database}_backup"
    admin = make_engine(scratch.url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    subprocess.run(
        ["psql", "-q", "-v", "ON_ERROR_STOP=1", *conninfo, "-d", name, "-f", str(dump)],
        check=True,
        capture_output=True,
    )
    engine = make_engine(url.set(database=name).render_as_string(hide_password=False))

    def dispose() -> None:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()

    return engine, dispose


def copy_relation_file(scratch: Scratch, folder: Path) -> bytes | None:
    """The raw bytes of the ``case_keys`` heap file (PostgreSQL, readable data directory)."""
    if scratch.sqlite_file is not None:
        return None
    with get_db(scratch.app).engine.connect() as connection:
        connection.exec_driver_sql("CHECKPOINT")
        data = connection.exec_driver_sql("SHOW data_directory").scalar_one()
        relative = connection.exec_driver_sql(
            "SELECT pg_relation_filepath('case_keys')"
        ).scalar_one()
    source = Path(data) / relative
    try:
        copy = folder / "case_keys.relation"
        shutil.copyfile(source, copy)
    except OSError:
        return None  # not root, or PostgreSQL on another machine: pg_dump covers it
    return copy.read_bytes()


def wrapped_keys(engine: Engine) -> dict[uuid.UUID, WrappedKey]:
    with engine.connect() as connection:
        rows = connection.execute(select(CaseKey.case_id, CaseKey.kek_id, CaseKey.wrapped_key))
        return {case_id: WrappedKey(kek, bytes(blob)) for case_id, kek, blob in rows}


def member_ciphertexts(engine: Engine) -> list[tuple[uuid.UUID, uuid.UUID, str, bytes]]:
    table = CaseMember.__table__
    columns = [table.c.case_id, table.c.id, *(table.c[name] for name in SEALED_MEMBER_COLUMNS)]
    found = []
    with engine.connect() as connection:
        for row in connection.execute(select(*columns)):
            for name, blob in zip(SEALED_MEMBER_COLUMNS, row[2:], strict=True):
                if blob is not None:
                    found.append((row[0], row[1], name, bytes(blob)))
    return found


def seeds(engine: Engine) -> list[tuple[uuid.UUID, str, bytes]]:
    with engine.connect() as connection:
        query = select(User.id, User.mfa_kek_id, User.mfa_secret).where(
            User.mfa_secret.is_not(None)
        )
        return [(i, k, bytes(b)) for i, k, b in connection.execute(query)]


def opens(keyring: Keyring, wrapped: WrappedKey, case_id: uuid.UUID) -> bytes | None:
    try:
        return unwrap_data_key(keyring, wrapped, case_id)
    except SecurityError:
        return None


def plaintext(key: bytes, case_id: uuid.UUID, row_id: uuid.UUID, column: str, blob: bytes) -> Any:
    try:
        context = FieldContext("case_members", column, case_id, row_id)
        return decrypt_field(DataKey(key), blob, context).decode()
    except SecurityError:
        return None


def case_id_of(scratch: Scratch, reference: str) -> uuid.UUID:
    with get_db(scratch.app).session_factory() as session:
        found = session.scalar(select(Case.id).where(Case.reference == reference))
        assert found is not None
        return found


def invoke(scratch: Scratch, *args: str) -> Any:
    from casework.cli import main

    return scratch.app.test_cli_runner().invoke(main, list(args))


# --- the test -----------------------------------------------------------------------------


def test_an_erased_case_cannot_be_recovered_from_a_copy_after_the_shred(
    scratch: Scratch, tmp_path: Path
) -> None:
    kept = [Canaries(f"K{i}") for i in range(3)]
    doomed = Canaries("D9")
    kept_refs = [register(scratch, canary) for canary in kept]
    doomed_ref = register(scratch, doomed)
    user_id, seed = add_mfa_user(scratch)
    doomed_id = case_id_of(scratch, doomed_ref)
    kept_ids = [case_id_of(scratch, ref) for ref in kept_refs]

    relation = copy_relation_file(scratch, tmp_path)
    copy, dispose = copy_database(scratch, tmp_path)
    try:
        copied_keys = wrapped_keys(copy)
        assert set(copied_keys) == {doomed_id, *kept_ids}
        if scratch.sqlite_file is None and os.geteuid() == 0:
            assert relation is not None  # as root on this machine the data directory is readable
        if relation is not None:  # the relation file copy holds every wrapped key too
            assert all(w.blob in relation for w in copied_keys.values())

        erased = erase_by_two_people(scratch.app.test_client(), doomed_ref, SUP1, SUP2)
        assert erased.status_code == 200, erased.get_json()
        assert invoke(scratch, "keys", "status", "--json").output.count('"pending_shred": 1')

        # The threat: before the shred, the old copy and today's keyring open the erased case.
        keyring = holder(scratch.app).provider.load()
        doomed_key = opens(keyring, copied_keys[doomed_id], doomed_id)
        assert doomed_key is not None
        names = {
            plaintext(doomed_key, case_id, row_id, column, blob)
            for case_id, row_id, column, blob in member_ciphertexts(copy)
            if case_id == doomed_id and column == "full_name"
        }
        assert any(doomed.name in name for name in names if name)

        shred = invoke(scratch, "keys", "shred")
        assert shred.exit_code == 0, shred.output
        status = invoke(scratch, "keys", "status", "--json").output
        assert '"pending_shred": 0' in status

        keyring = holder(scratch.app).provider.load()
        # Every wrapped key and MFA seed in the copy is now sealed under a destroyed KEK.
        for case_id, wrapped in copied_keys.items():
            assert opens(keyring, wrapped, case_id) is None
        for seed_user, kek_id, blob in seeds(copy):
            with pytest.raises(SecurityError):
                open_seed(keyring, seed_user, kek_id, blob)
        # The keys we can still get: the live ones (the erased case has none).
        live_keys = {
            case_id: key
            for case_id, wrapped in wrapped_keys(get_db(scratch.app).engine).items()
            if (key := opens(keyring, wrapped, case_id)) is not None
        }
        assert set(live_keys) == set(kept_ids)
        copied = member_ciphertexts(copy)
        for case_id, row_id, column, blob in copied:
            if case_id == doomed_id:
                for key in live_keys.values():
                    assert plaintext(key, case_id, row_id, column, blob) is None
            else:  # a kept case in the old copy still opens with its (unchanged) data key
                assert plaintext(live_keys[case_id], case_id, row_id, column, blob) is not None
        assert any(case_id == doomed_id for case_id, *_ in copied)
    finally:
        dispose()

    # Every other case, and the MFA seed, still decrypt in the live service.
    client = scratch.app.test_client()
    for canary, ref in zip(kept, kept_refs, strict=True):
        read = client.get(f"{CASES}/{ref}", headers=WORKER)
        assert read.status_code == 200
        assert read.get_json()["members"][0]["full_name"] == canary.name
    assert client.get(f"{CASES}/{doomed_ref}", headers=WORKER).status_code == 410
    history = client.get(f"{CASES}/{doomed_ref}/history", headers=WORKER)
    assert history.status_code == 200
    ((_, kek_id, blob),) = seeds(get_db(scratch.app).engine)
    assert open_seed(holder(scratch.app).provider.load(), user_id, kek_id, blob) == seed
