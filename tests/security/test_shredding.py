import uuid

import pytest
from sqlalchemy import Engine, select, text

from casework.security.case_keys import data_key_cache, provision_case_key
from casework.security.errors import MissingDataKeyError
from casework.security.keyring import Keyring
from casework.security.models import CaseKey
from casework.security.shredding import shred

from .sample_models import Member, open_session


def _case_with_member(
    sample_engine: Engine, keyring: Keyring, name: str
) -> tuple[uuid.UUID, uuid.UUID]:
    case_id = uuid.uuid4()
    with open_session(sample_engine, keyring) as session:
        provision_case_key(session, case_id)
        member = Member(case_id=case_id, full_name=name)
        member_id = member.id
        session.add(member)
        session.commit()
    return case_id, member_id


def test_shredded_case_is_unreadable_though_its_ciphertext_remains(
    sample_engine: Engine, keyring: Keyring
) -> None:
    shredded, shredded_member = _case_with_member(sample_engine, keyring, "Erased Person")
    _, kept_member = _case_with_member(sample_engine, keyring, "Kept Person")
    with open_session(sample_engine, keyring) as session:
        assert session.get_one(Member, shredded_member).full_name == "Erased Person"
        shred(session, shredded)
        assert shredded not in data_key_cache(session)
        with pytest.raises(MissingDataKeyError):
            _ = session.get_one(Member, shredded_member).full_name
        session.commit()
    with open_session(sample_engine, keyring) as session:
        assert session.get(CaseKey, shredded) is None
        with pytest.raises(MissingDataKeyError):
            _ = session.get_one(Member, shredded_member).full_name
        assert session.get_one(Member, kept_member).full_name == "Kept Person"
    with sample_engine.connect() as connection:
        blob = connection.execute(
            text("SELECT full_name FROM sample_members WHERE id = :id"), {"id": shredded_member.hex}
        ).scalar_one()
        assert blob
        assert b"Erased" not in blob


def test_values_assigned_before_the_shred_are_sealed_first(
    sample_engine: Engine, keyring: Keyring
) -> None:
    case_id, member_id = _case_with_member(sample_engine, keyring, "Before")
    with open_session(sample_engine, keyring) as session:
        session.get_one(Member, member_id).nickname = "assigned just before erasure"
        shred(session, case_id)
        stored = session.scalars(select(Member._nickname_ciphertext)).one()  # type: ignore[attr-defined]
        assert stored is not None
        assert b"erasure" not in stored


def test_shredding_twice_or_without_a_key_is_an_error(
    sample_engine: Engine, keyring: Keyring
) -> None:
    case_id, _ = _case_with_member(sample_engine, keyring, "Once")
    with open_session(sample_engine, keyring) as session:
        shred(session, case_id)
        with pytest.raises(MissingDataKeyError, match="no data key to shred"):
            shred(session, case_id)
        with pytest.raises(MissingDataKeyError):
            shred(session, uuid.uuid4())
