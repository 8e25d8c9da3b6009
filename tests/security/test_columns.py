import datetime
import uuid

import pytest
from sqlalchemy import Engine, LargeBinary, select, text, update
from sqlalchemy.orm import Session

from casework.security.case_keys import data_key_cache, provision_case_key
from casework.security.columns import (
    EncryptedField,
    RowIds,
    Sealed,
    read_sealed_columns,
    read_sealed_rows,
    row_seal,
    sealed_columns,
)
from casework.security.errors import (
    CodecError,
    DecryptionError,
    EncryptionContextError,
    MissingDataKeyError,
    RowIntegrityError,
)
from casework.security.keyring import Keyring

from .sample_models import IntegerKeyed, Member, SampleCase, open_session

MEMBERS = Member.metadata.tables[Member.__tablename__]
BORN = datetime.date(1987, 3, 14)
NEEDS = {"codes": ["SM-MI", "DS-BD"], "notes": "needs ground floor"}


def _member(case_id: uuid.UUID, name: str = "Amina Yusuf") -> Member:
    return Member(
        case_id=case_id,
        full_name=name,
        born_on=BORN,
        household_size=5,
        needs=NEEDS,
        phone="+256 700 123456",
    )


def _store(sample_engine: Engine, keyring: Keyring, *members: Member) -> None:
    with open_session(sample_engine, keyring, expire_on_commit=False) as session:
        for case_id in {m.case_id for m in members}:
            provision_case_key(session, case_id)
        session.add_all(members)
        session.commit()


def _raw_row(sample_engine: Engine, member_id: uuid.UUID) -> dict[str, object]:
    with sample_engine.connect() as connection:
        row = connection.execute(
            text("SELECT * FROM sample_members WHERE id = :id"), {"id": member_id.hex}
        )
        return dict(row.mappings().one())


def test_values_round_trip_through_the_database(sample_engine: Engine, keyring: Keyring) -> None:
    member = _member(uuid.uuid4())
    _store(sample_engine, keyring, member)
    with open_session(sample_engine, keyring) as session:
        loaded = session.get_one(Member, member.id)
        assert loaded.full_name == "Amina Yusuf"
        assert loaded.born_on == BORN
        assert loaded.household_size == 5
        assert loaded.needs == NEEDS
        assert loaded.phone == "+256 700 123456"
        assert loaded.nickname is None


def test_the_database_holds_only_ciphertext(sample_engine: Engine, keyring: Keyring) -> None:
    member = _member(uuid.uuid4())
    _store(sample_engine, keyring, member)
    row = _raw_row(sample_engine, member.id)
    for column in ("full_name", "born_on", "household_size", "needs", "phone_number"):
        blob = row[column]
        assert isinstance(blob, bytes)
        assert blob[0] == 0x01
    assert b"Amina" not in row["full_name"]  # type: ignore[operator]
    assert b"ground floor" not in row["needs"]  # type: ignore[operator]
    assert b"700" not in row["phone_number"]  # type: ignore[operator]
    assert row["nickname"] is None


def test_equal_values_in_two_rows_have_different_ciphertexts(
    sample_engine: Engine, keyring: Keyring
) -> None:
    case_id = uuid.uuid4()
    first, second = _member(case_id), _member(case_id)
    _store(sample_engine, keyring, first, second)
    assert (
        _raw_row(sample_engine, first.id)["full_name"]
        != _raw_row(sample_engine, second.id)["full_name"]
    )


def test_reading_many_rows_unwraps_each_case_key_once(
    sample_engine: Engine, keyring: Keyring
) -> None:
    cases = [uuid.uuid4() for _ in range(50)]
    members = [_member(case_id, f"member {i}") for i, case_id in enumerate(cases * 4)]
    _store(sample_engine, keyring, *members)
    with open_session(sample_engine, keyring) as session:
        names = {m.full_name for m in session.scalars(select(Member))}
        assert names == {f"member {i}" for i in range(200)}
        assert data_key_cache(session).unwraps == 50


def test_writing_a_new_case_needs_no_unwrap(sample_engine: Engine, keyring: Keyring) -> None:
    with open_session(sample_engine, keyring) as session:
        case_id = uuid.uuid4()
        provision_case_key(session, case_id)
        session.add_all([_member(case_id) for _ in range(10)])
        session.flush()
        assert data_key_cache(session).unwraps == 0


def _copy_column(
    sample_engine: Engine, source: Member, target: Member, column: str, into: str | None = None
) -> None:
    blob = _raw_row(sample_engine, source.id)[column]
    with sample_engine.begin() as connection:
        connection.execute(
            update(MEMBERS).where(MEMBERS.c.id == target.id).values({into or column: blob})
        )


def _reseal(sample_engine: Engine, keyring: Keyring, member: Member) -> None:
    """Recompute the row seal over what the row holds now, as only a key holder could:
    it takes the row check out of the way, to show each field's own binding holds too."""
    raw = _raw_row(sample_engine, member.id)
    with open_session(sample_engine, keyring) as session:
        key = data_key_cache(session).get(member.case_id)
    seal = row_seal(
        key,
        "sample_members",
        RowIds(member.case_id, member.id),
        2,
        ((column, raw[column]) for column, _attr in sealed_columns(Member)),
    )
    with sample_engine.begin() as connection:
        connection.execute(update(MEMBERS).where(MEMBERS.c.id == member.id).values(row_seal=seal))


def _read_name(sample_engine: Engine, keyring: Keyring, member: Member, attribute: str) -> object:
    with open_session(sample_engine, keyring) as session:
        return getattr(session.get_one(Member, member.id), attribute)


def test_ciphertext_copied_to_another_row_is_rejected(
    sample_engine: Engine, keyring: Keyring
) -> None:
    case_id = uuid.uuid4()
    source, target = _member(case_id, "Source"), _member(case_id, "Target")
    _store(sample_engine, keyring, source, target)
    _copy_column(sample_engine, source, target, "full_name")
    with pytest.raises(RowIntegrityError):
        _read_name(sample_engine, keyring, target, "full_name")
    _reseal(sample_engine, keyring, target)
    with pytest.raises(DecryptionError):
        _read_name(sample_engine, keyring, target, "full_name")


def test_ciphertext_copied_to_another_column_is_rejected(
    sample_engine: Engine, keyring: Keyring
) -> None:
    member = _member(uuid.uuid4())
    _store(sample_engine, keyring, member)
    _copy_column(sample_engine, member, member, "full_name", into="nickname")
    with pytest.raises(RowIntegrityError):
        _read_name(sample_engine, keyring, member, "nickname")
    _reseal(sample_engine, keyring, member)
    with pytest.raises(DecryptionError):
        _read_name(sample_engine, keyring, member, "nickname")


def test_ciphertext_copied_to_another_case_is_rejected(
    sample_engine: Engine, keyring: Keyring
) -> None:
    source, target = _member(uuid.uuid4(), "Source"), _member(uuid.uuid4(), "Target")
    _store(sample_engine, keyring, source, target)
    _copy_column(sample_engine, source, target, "full_name")
    with pytest.raises(RowIntegrityError):
        _read_name(sample_engine, keyring, target, "full_name")
    _reseal(sample_engine, keyring, target)
    with pytest.raises(DecryptionError, match="different data key"):
        _read_name(sample_engine, keyring, target, "full_name")


def test_none_is_stored_as_a_sealed_null_of_the_same_size(
    sample_engine: Engine, keyring: Keyring
) -> None:
    member = _member(uuid.uuid4())
    _store(sample_engine, keyring, member)
    with open_session(sample_engine, keyring) as session:
        loaded = session.get_one(Member, member.id)
        loaded.phone = None
        assert loaded.phone is None
        session.commit()
    stored = _raw_row(sample_engine, member.id)["phone_number"]
    assert isinstance(stored, bytes)
    assert len(stored) == len(
        _raw_row(sample_engine, _member_with_phone(sample_engine, keyring))["phone_number"]
    )
    assert _read_name(sample_engine, keyring, member, "phone") is None


def _member_with_phone(sample_engine: Engine, keyring: Keyring) -> uuid.UUID:
    other = _member(uuid.uuid4())
    _store(sample_engine, keyring, other)
    return other.id


def test_updates_are_re_encrypted(sample_engine: Engine, keyring: Keyring) -> None:
    member = _member(uuid.uuid4())
    _store(sample_engine, keyring, member)
    before = _raw_row(sample_engine, member.id)["full_name"]
    with open_session(sample_engine, keyring) as session:
        session.get_one(Member, member.id).full_name = "Amina Y. Hassan"
        session.commit()
    assert _raw_row(sample_engine, member.id)["full_name"] != before
    assert _read_name(sample_engine, keyring, member, "full_name") == "Amina Y. Hassan"


def test_a_wrong_type_fails_where_it_is_assigned(keyring: Keyring) -> None:
    member = _member(uuid.uuid4())
    with pytest.raises(CodecError):
        member.born_on = "1987-03-14"  # type: ignore[assignment]
    with pytest.raises(CodecError):
        member.born_on = datetime.datetime(1987, 3, 14, 8, 0)
    with pytest.raises(CodecError):
        member.household_size = True
    assert member.born_on == BORN


def test_assigned_values_are_readable_before_the_flush_and_sealed_by_it(
    sample_engine: Engine, keyring: Keyring
) -> None:
    case_id = uuid.uuid4()
    with open_session(sample_engine, keyring) as session:
        provision_case_key(session, case_id)
        member = _member(case_id)
        session.add(member)
        assert member.full_name == "Amina Yusuf"
        stored = session.scalars(select(Member._full_name_ciphertext)).one()  # type: ignore[attr-defined]
        assert stored is not None
        assert b"Amina" not in stored
        member.nickname = "Mina"
        session.flush()
        assert member.nickname == "Mina"
        session.commit()


def test_rollback_discards_unflushed_values(sample_engine: Engine, keyring: Keyring) -> None:
    member = _member(uuid.uuid4())
    _store(sample_engine, keyring, member)
    with open_session(sample_engine, keyring) as session:
        loaded = session.get_one(Member, member.id)
        loaded.full_name = "Changed"
        session.rollback()
        assert loaded.full_name == "Amina Yusuf"


def test_json_changes_need_a_new_assignment(sample_engine: Engine, keyring: Keyring) -> None:
    member = _member(uuid.uuid4())
    _store(sample_engine, keyring, member)
    with open_session(sample_engine, keyring) as session:
        loaded = session.get_one(Member, member.id)
        needs = loaded.needs
        assert isinstance(needs, dict)
        needs["notes"] = "changed in place"
        assert loaded.needs == NEEDS
        loaded.needs = needs
        session.commit()
    assert _read_name(sample_engine, keyring, member, "needs") == needs


def test_a_session_without_keyring_cannot_encrypt_or_decrypt(
    sample_engine: Engine, keyring: Keyring
) -> None:
    member = _member(uuid.uuid4())
    with Session(sample_engine) as session:
        session.add(_member(uuid.uuid4()))
        with pytest.raises(EncryptionContextError, match="attach_keyring"):
            session.flush()
    _store(sample_engine, keyring, member)
    with (
        Session(sample_engine) as session,
        pytest.raises(EncryptionContextError, match="no keyring"),
    ):
        _ = session.get_one(Member, member.id).full_name


def test_a_detached_row_cannot_be_decrypted(sample_engine: Engine, keyring: Keyring) -> None:
    member = _member(uuid.uuid4())
    _store(sample_engine, keyring, member)
    with open_session(sample_engine, keyring) as session:
        loaded = session.get_one(Member, member.id)
        session.expunge(loaded)
    with pytest.raises(EncryptionContextError, match="not in a session"):
        _ = loaded.full_name


def test_rows_need_a_uuid_id_and_a_case_id_before_the_flush(
    sample_engine: Engine, keyring: Keyring
) -> None:
    case_id = uuid.uuid4()
    with open_session(sample_engine, keyring) as session:
        provision_case_key(session, case_id)
        session.add(IntegerKeyed(case_id=case_id, secret="x"))
        with pytest.raises(EncryptionContextError, match="id must be assigned at construction"):
            session.flush()
    with open_session(sample_engine, keyring) as session:
        session.add(Member(full_name="no case yet"))
        with pytest.raises(EncryptionContextError, match="case_id must be set"):
            session.flush()


def test_a_case_without_a_data_key_cannot_store_values(
    sample_engine: Engine, keyring: Keyring
) -> None:
    with open_session(sample_engine, keyring) as session:
        session.add(_member(uuid.uuid4()))
        with pytest.raises(MissingDataKeyError):
            session.flush()


def test_a_model_whose_own_id_is_the_case_id(sample_engine: Engine, keyring: Keyring) -> None:
    case_id = uuid.uuid4()
    case = SampleCase(id=case_id, narrative="Fled in 2019 with two children.")
    with open_session(sample_engine, keyring) as session:
        provision_case_key(session, case_id)
        session.add(case)
        session.commit()
    with open_session(sample_engine, keyring) as session:
        narrative = session.get_one(SampleCase, case_id).narrative
        assert narrative == "Fled in 2019 with two children."


def test_declarations_create_binary_ciphertext_columns() -> None:
    assert isinstance(Member.full_name, Sealed)
    assert isinstance(Member.phone, EncryptedField)
    assert repr(Member.phone) == "<Sealed 'phone' (json padded to 32 bytes)>"
    columns = Member.__table__.c
    assert "phone_number" in columns
    assert "phone" not in columns
    for name in ("full_name", "born_on", "household_size", "needs", "phone_number"):
        assert isinstance(columns[name].type, LargeBinary)
        assert "encrypted" in (columns[name].comment or "")


# --- the per-row authenticator: a field cannot be rolled back alone ------------------------


def _rename(sample_engine: Engine, keyring: Keyring, member: Member, name: str) -> None:
    with open_session(sample_engine, keyring) as session:
        session.get_one(Member, member.id).full_name = name
        session.commit()


def test_a_field_rolled_back_alone_fails_to_open(sample_engine: Engine, keyring: Keyring) -> None:
    member = _member(uuid.uuid4(), "First Name")
    _store(sample_engine, keyring, member)
    old = _raw_row(sample_engine, member.id)
    _rename(sample_engine, keyring, member, "Second Name")
    assert _read_name(sample_engine, keyring, member, "full_name") == "Second Name"
    with sample_engine.begin() as connection:  # a database writer puts the older ciphertext back
        connection.execute(
            update(MEMBERS).where(MEMBERS.c.id == member.id).values(full_name=old["full_name"])
        )
    for attribute in ("full_name", "phone", "born_on"):
        with pytest.raises(RowIntegrityError, match="sample_members row"):
            _read_name(sample_engine, keyring, member, attribute)


def test_a_row_mixed_from_two_versions_fails_to_open(
    sample_engine: Engine, keyring: Keyring
) -> None:
    member = _member(uuid.uuid4(), "First Name")
    _store(sample_engine, keyring, member)
    old = _raw_row(sample_engine, member.id)
    with open_session(sample_engine, keyring) as session:
        loaded = session.get_one(Member, member.id)
        loaded.full_name, loaded.phone = "Second Name", "+256 700 000000"
        session.commit()
    with sample_engine.begin() as connection:  # old seal and name, new phone
        connection.execute(
            update(MEMBERS)
            .where(MEMBERS.c.id == member.id)
            .values(full_name=old["full_name"], row_seal=old["row_seal"])
        )
    with pytest.raises(RowIntegrityError):
        _read_name(sample_engine, keyring, member, "full_name")


def test_a_stripped_seal_or_a_nulled_field_fails_to_open(
    sample_engine: Engine, keyring: Keyring
) -> None:
    member = _member(uuid.uuid4())
    _store(sample_engine, keyring, member)
    for change in ({"row_seal": None}, {"phone_number": None}):
        other = _member(uuid.uuid4())
        _store(sample_engine, keyring, other)
        with sample_engine.begin() as connection:
            connection.execute(update(MEMBERS).where(MEMBERS.c.id == other.id).values(change))
        with pytest.raises(RowIntegrityError):
            _read_name(sample_engine, keyring, other, "full_name")
    assert _read_name(sample_engine, keyring, member, "full_name") == "Amina Yusuf"


def test_the_seal_counts_writes(sample_engine: Engine, keyring: Keyring) -> None:
    member = _member(uuid.uuid4())
    _store(sample_engine, keyring, member)
    first = _raw_row(sample_engine, member.id)["row_seal"]
    _rename(sample_engine, keyring, member, "Renamed")
    second = _raw_row(sample_engine, member.id)["row_seal"]
    assert isinstance(first, bytes)
    assert isinstance(second, bytes)
    assert int.from_bytes(first[:8], "big") == 1
    assert int.from_bytes(second[:8], "big") == 2


def _sealed_case_rows(sample_engine: Engine) -> list[tuple[uuid.UUID, tuple[object, ...]]]:
    with sample_engine.connect() as connection:
        found = connection.execute(
            text("SELECT id, narrative, row_seal FROM sample_cases ORDER BY id")
        ).all()
    return [(uuid.UUID(hex=row[0]), (row[1], row[2])) for row in found]


def _both_readers(
    sample_engine: Engine, keyring: Keyring, rows: list[tuple[uuid.UUID, tuple[object, ...]]]
) -> tuple[object, object]:
    """What read_sealed_rows and read_sealed_columns make of the same rows (values or the
    error, with the table and column it names)."""
    outcomes: list[object] = []
    for batch in (True, False):
        with open_session(sample_engine, keyring) as session:
            try:
                if batch:
                    outcome: object = read_sealed_rows(session, SampleCase, rows, ["narrative"])
                else:
                    outcome = [
                        read_sealed_columns(
                            session,
                            SampleCase,
                            RowIds(case_id, case_id),
                            sealed[1],  # type: ignore[arg-type]
                            {"_narrative_ciphertext": sealed[0]},  # type: ignore[dict-item]
                            ["narrative"],
                        )
                        for case_id, sealed in rows
                    ]
            except (RowIntegrityError, DecryptionError, MissingDataKeyError) as error:
                outcome = (
                    type(error),
                    getattr(error, "table", None),
                    getattr(error, "column", None),
                )
        outcomes.append(outcome)
    return outcomes[0], outcomes[1]


def test_a_page_of_rows_is_checked_as_each_row_alone(
    sample_engine: Engine, keyring: Keyring
) -> None:
    """read_sealed_rows (a list page) opens and refuses exactly what read_sealed_columns does."""
    with open_session(sample_engine, keyring) as session:
        for text_value in ("Fled in 2019.", None, "Arrived alone."):
            case_id = uuid.uuid4()
            provision_case_key(session, case_id)
            session.add(SampleCase(id=case_id, narrative=text_value))
        session.commit()
    rows = _sealed_case_rows(sample_engine)
    batch, single = _both_readers(sample_engine, keyring, rows)
    assert batch == single
    opened = sorted(str(view["narrative"]) for view in batch)  # type: ignore[attr-defined, index]
    assert opened == ["Arrived alone.", "Fled in 2019.", "None"]
    (first_id, (blob, seal)), other = rows[0], rows[1]
    assert isinstance(blob, bytes)
    assert isinstance(seal, bytes)
    tampered: list[tuple[object, object]] = [
        (blob, seal[:-1] + bytes([seal[-1] ^ 1])),  # the MAC
        (blob, bytes([seal[0] ^ 1]) + seal[1:]),  # the counter
        (blob[:-1] + bytes([blob[-1] ^ 1]), seal),  # the ciphertext
        (blob, seal[:8]),  # too short
        (blob, None),  # stripped
        (None, seal),  # a nulled field
        (other[1][0], seal),  # another case's ciphertext
    ]
    for sealed in tampered:
        changed = [(first_id, sealed), *rows[1:]]
        batch, single = _both_readers(sample_engine, keyring, changed)
        assert batch == single == (RowIntegrityError, "sample_cases", "narrative")
    erased = [(first_id, (None, None))]
    assert _both_readers(sample_engine, keyring, erased) == (
        [{"narrative": None}],
        [{"narrative": None}],
    )
