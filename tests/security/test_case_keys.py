import uuid

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from casework.security.case_keys import (
    SESSION_INFO_KEY,
    attach_keyring,
    data_key_cache,
    provision_case_key,
)
from casework.security.envelope import unwrap_data_key
from casework.security.errors import (
    DataKeyExistsError,
    EncryptionContextError,
    MissingDataKeyError,
)
from casework.security.keyring import Keyring
from casework.security.models import CaseKey

from .sample_models import Member, open_session


def test_attach_keyring_puts_a_cache_on_the_session(
    sample_engine: Engine, keyring: Keyring
) -> None:
    with Session(sample_engine) as session:
        with pytest.raises(EncryptionContextError):
            data_key_cache(session)
        cache = attach_keyring(session, keyring)
        assert session.info[SESSION_INFO_KEY] is cache
        assert data_key_cache(session) is cache
        assert cache.keyring is keyring


def test_provisioned_key_is_wrapped_under_the_active_kek(
    sample_engine: Engine, keyring: Keyring
) -> None:
    case_id = uuid.uuid4()
    with open_session(sample_engine, keyring) as session:
        row = provision_case_key(session, case_id)
        cached = data_key_cache(session).get(case_id)
        assert row.kek_id == keyring.active_kek().kek_id
        assert unwrap_data_key(keyring, row.wrapped(), case_id) == cached.material
        session.commit()
    with open_session(sample_engine, keyring) as session:
        stored = session.get_one(CaseKey, case_id)
        assert stored.created_at is not None
        assert stored.rotated_at is None


def test_a_case_gets_one_data_key_only(sample_engine: Engine, keyring: Keyring) -> None:
    case_id = uuid.uuid4()
    with open_session(sample_engine, keyring) as session:
        provision_case_key(session, case_id)
        with pytest.raises(DataKeyExistsError):
            provision_case_key(session, case_id)
        session.commit()
    with open_session(sample_engine, keyring) as session, pytest.raises(DataKeyExistsError):
        provision_case_key(session, case_id)


def test_cache_is_emptied_when_the_transaction_ends(
    sample_engine: Engine, keyring: Keyring
) -> None:
    with open_session(sample_engine, keyring) as session:
        cache = data_key_cache(session)
        provision_case_key(session, uuid.uuid4())
        assert len(cache) == 1
        session.commit()
        assert len(cache) == 0
        case_id = uuid.uuid4()
        provision_case_key(session, case_id)
        session.flush()
        assert len(cache) == 1
        session.rollback()
        assert len(cache) == 0


def test_a_key_provisioned_in_a_rolled_back_transaction_is_never_used(
    sample_engine: Engine, keyring: Keyring
) -> None:
    case_id = uuid.uuid4()
    with open_session(sample_engine, keyring) as session:
        provision_case_key(session, case_id)
        session.rollback()
        assert session.scalars(select(CaseKey)).all() == []
        session.add(Member(case_id=case_id, full_name="Would be unreadable"))
        with pytest.raises(MissingDataKeyError):
            session.flush()


def test_a_rolled_back_savepoint_forgets_its_keys(sample_engine: Engine, keyring: Keyring) -> None:
    kept, dropped = uuid.uuid4(), uuid.uuid4()
    with open_session(sample_engine, keyring) as session:
        provision_case_key(session, kept)
        savepoint = session.begin_nested()
        provision_case_key(session, dropped)
        savepoint.rollback()
        assert dropped not in data_key_cache(session)
        session.add(Member(case_id=kept, full_name="Kept"))
        session.flush()
        session.add(Member(case_id=dropped, full_name="Dropped"))
        with pytest.raises(MissingDataKeyError):
            session.flush()


def test_a_released_savepoint_keeps_its_keys_until_the_transaction_ends(
    sample_engine: Engine, keyring: Keyring
) -> None:
    case_id = uuid.uuid4()
    with open_session(sample_engine, keyring) as session:
        cache = data_key_cache(session)
        with session.begin_nested():
            provision_case_key(session, case_id)
        assert case_id in cache  # its key row is pending in the enclosing transaction
        session.add(Member(case_id=case_id, full_name="Kept"))
        session.flush()
        session.rollback()
        assert len(cache) == 0


def test_a_drawn_case_id_is_not_looked_up(sample_engine: Engine, keyring: Keyring) -> None:
    case_id = uuid.uuid4()
    statements: list[str] = []
    with open_session(sample_engine, keyring) as session:
        session.connection()  # the transaction begins before counting

        def record(*args: object) -> None:
            statements.append(str(args[2]))

        event.listen(sample_engine, "before_cursor_execute", record)
        try:
            provision_case_key(session, case_id, drawn=True)
        finally:
            event.remove(sample_engine, "before_cursor_execute", record)
        assert statements == []
        with pytest.raises(DataKeyExistsError):  # a key in hand is still refused
            provision_case_key(session, case_id, drawn=True)
        session.commit()
