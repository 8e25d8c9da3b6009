import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from casework.keys.rotation import keys_behind, retire_kek, rewrap, rewrap_batch
from casework.security.case_keys import data_key_cache, provision_case_key
from casework.security.envelope import new_data_key, unwrap_data_key, wrap_data_key
from casework.security.errors import KeyringError, UnknownKeyError
from casework.security.keyring import Keyring, KeyState
from casework.security.models import CaseKey

from .sample_models import Member, open_session


def test_rewrap_moves_the_same_data_key_under_the_active_kek(keyring: Keyring) -> None:
    case_id, material = uuid.uuid4(), new_data_key()
    old = wrap_data_key(keyring, material, case_id)
    keyring.rotate()
    new = rewrap(keyring, old, case_id)
    assert new.kek_id == keyring.active_kek().kek_id != old.kek_id
    assert unwrap_data_key(keyring, new, case_id) == material
    keyring.retire(old.kek_id)
    assert unwrap_data_key(keyring, new, case_id) == material
    with pytest.raises(UnknownKeyError):
        rewrap(keyring, old, case_id)


def _utc(moment: datetime | None) -> datetime:
    assert moment is not None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _seed(sample_engine: Engine, keyring: Keyring, count: int) -> dict[uuid.UUID, str]:
    names = {}
    with open_session(sample_engine, keyring) as session:
        for i in range(count):
            case_id = uuid.uuid4()
            provision_case_key(session, case_id)
            session.add(Member(case_id=case_id, full_name=f"person {i}"))
            names[case_id] = f"person {i}"
        session.commit()
    return names


def test_batches_re_wrap_every_key_and_fields_stay_readable(
    sample_engine: Engine, keyring: Keyring
) -> None:
    names = _seed(sample_engine, keyring, 7)
    old = keyring.active_kek().kek_id
    keyring.rotate()
    started = datetime.now(UTC)
    batches = []
    with open_session(sample_engine, keyring) as session:
        assert keys_behind(session, keyring) == 7
        while count := rewrap_batch(session, keyring, limit=3):
            session.commit()
            batches.append(count)
        assert batches == [3, 3, 1]
        assert keys_behind(session, keyring) == 0
        rows = session.scalars(select(CaseKey)).all()
        assert {row.kek_id for row in rows} == {keyring.active_kek().kek_id}
        # Written in the columns' stored form: read back as the same instant.
        assert all(
            started - timedelta(seconds=1) <= _utc(row.rotated_at) <= datetime.now(UTC)
            for row in rows
        )
    with open_session(sample_engine, keyring) as session:
        retire_kek(session, keyring, old)
    assert [k.state for k in keyring.keks] == [KeyState.DESTROYED, KeyState.ACTIVE]
    with open_session(sample_engine, keyring) as session:
        members = session.scalars(select(Member)).all()
        assert {m.case_id: m.full_name for m in members} == names
        assert data_key_cache(session).unwraps == 7


def test_retiring_a_kek_still_in_use_is_refused(sample_engine: Engine, keyring: Keyring) -> None:
    _seed(sample_engine, keyring, 2)
    old = keyring.active_kek().kek_id
    keyring.rotate()
    with open_session(sample_engine, keyring) as session:
        with pytest.raises(
            KeyringError, match=f"2 case key\\(s\\) are still wrapped under KEK {old}"
        ):
            retire_kek(session, keyring, old)
        assert keyring.kek(old).state is KeyState.DECRYPT_ONLY
        assert rewrap_batch(session, keyring) == 2
        assert rewrap_batch(session, keyring) == 0
        session.flush()
        retire_kek(session, keyring, old)
    with pytest.raises(UnknownKeyError):
        keyring.kek(old)
