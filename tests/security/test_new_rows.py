"""Rows written without the unit of work (:func:`seal_new_row`) hold what a flush of the
same objects writes, byte for byte, and the instance is left as that flush leaves it."""

import datetime
import uuid
from types import SimpleNamespace

import pytest
from sqlalchemy import Engine, insert, text
from sqlalchemy.orm import make_transient_to_detached

from casework.security import envelope
from casework.security.case_keys import data_key_cache, provision_case_key, provision_new_case_keys
from casework.security.columns import PENDING_ATTRIBUTE, seal_new_row
from casework.security.keyring import Keyring
from casework.security.models import CaseKey

from .sample_models import Member, open_session
from .test_columns import MEMBERS, _raw_row

SEALED = ("full_name", "nickname", "born_on", "household_size", "needs", "phone_number")


def _member(case_id: uuid.UUID, member_id: uuid.UUID) -> Member:
    """Every attribute but ``nickname`` assigned: a column never assigned stays NULL."""
    return Member(
        id=member_id,
        case_id=case_id,
        full_name="Amina Yusuf",
        born_on=datetime.date(1987, 3, 14),
        household_size=5,
        needs={"codes": ["SM-MI"]},
        phone=None,
    )


def test_a_new_row_is_the_bytes_a_flush_writes(
    sample_engine: Engine, keyring: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the nonces fixed (the only random part), the ciphertexts and the seal are equal."""
    case_id, flushed_id = uuid.uuid4(), uuid.uuid4()
    monkeypatch.setattr(envelope, "os", SimpleNamespace(urandom=bytes))  # zero nonces
    with open_session(sample_engine, keyring) as session:
        provision_case_key(session, case_id)
        key = data_key_cache(session).get(case_id)
        session.add(_member(case_id, flushed_id))
        session.commit()
    flushed = _raw_row(sample_engine, flushed_id)
    with open_session(sample_engine, keyring) as session:
        data_key_cache(session).remember(case_id, key)
        member = _member(case_id, flushed_id)
        columns = seal_new_row(member, key)
    assert set(columns) == {*SEALED, "row_seal"}
    assert columns == {name: flushed[name] for name in columns}
    assert columns["nickname"] is None
    assert PENDING_ATTRIBUTE not in member.__dict__


def test_a_new_row_written_without_the_unit_of_work_reads_back(
    sample_engine: Engine, keyring: Keyring
) -> None:
    """Inserted as a table row, it is read back (seal checked, values opened) in another
    session; the instance made persistent serves its values without opening anything."""
    case_id, member_id = uuid.uuid4(), uuid.uuid4()
    with open_session(sample_engine, keyring) as session:
        (key_row,) = provision_new_case_keys(session, [case_id])
        member = _member(case_id, member_id)
        columns = seal_new_row(member, data_key_cache(session).get(case_id))
        session.execute(insert(CaseKey.__table__), [key_row])
        session.execute(insert(MEMBERS), [{"id": member_id, "case_id": case_id, **columns}])
        make_transient_to_detached(member)
        session.add(member)
        assert member.full_name == "Amina Yusuf"
        assert data_key_cache(session).unwraps == 0
        session.commit()
    with open_session(sample_engine, keyring) as session:
        stored = session.get_one(Member, member_id)
        assert (stored.full_name, stored.nickname, stored.phone) == ("Amina Yusuf", None, None)
        assert stored.needs == {"codes": ["SM-MI"]}
    with sample_engine.connect() as connection:
        kek = connection.execute(text("SELECT kek_id FROM case_keys")).scalar_one()
    assert kek == keyring.active_kek().kek_id
