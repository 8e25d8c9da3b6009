"""The plaintext cache of loaded rows: each row image's seal is checked once, each value
opened once; bytes read from the database (again) are always checked first."""

import datetime
import subprocess
import sys
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, select, text, update

from casework.security import columns
from casework.security.case_keys import data_key_cache, provision_case_key
from casework.security.envelope import DataKey, new_data_key
from casework.security.errors import EncryptionContextError, MissingDataKeyError, RowIntegrityError
from casework.security.keyring import Keyring
from casework.security.shredding import shred

from .sample_models import Member, open_session

MEMBERS = Member.metadata.tables[Member.__tablename__]
NEEDS = {"codes": ["SM-MI"], "notes": "needs ground floor"}
FIELDS = ("full_name", "nickname", "born_on", "household_size", "needs", "phone")


class Counts:
    def __init__(self) -> None:
        self.opened = 0
        self.checked = 0


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Counts:
    """How many ciphertexts are opened and row seals checked."""
    found = Counts()
    open_with_aad, check_seal = columns.open_with_aad, columns._check_seal

    def counted_open(*args: Any) -> bytes:
        found.opened += 1
        return open_with_aad(*args)

    def counted_check(*args: Any) -> None:
        found.checked += 1
        check_seal(*args)

    monkeypatch.setattr(columns, "open_with_aad", counted_open)
    monkeypatch.setattr(columns, "_check_seal", counted_check)
    return found


def _member(case_id: uuid.UUID, name: str = "Amina Yusuf") -> Member:
    return Member(
        case_id=case_id,
        full_name=name,
        born_on=datetime.date(1987, 3, 14),
        household_size=5,
        needs=NEEDS,
        phone="+256 700 123456",
    )


def _stored(sample_engine: Engine, keyring: Keyring, name: str = "Amina Yusuf") -> Member:
    member = _member(uuid.uuid4(), name)
    with open_session(sample_engine, keyring, expire_on_commit=False) as session:
        provision_case_key(session, member.case_id)
        session.add(member)
        session.commit()
    return member


def _raw(sample_engine: Engine, member_id: uuid.UUID) -> dict[str, Any]:
    with sample_engine.connect() as connection:
        found = connection.execute(
            text("SELECT * FROM sample_members WHERE id = :id"), {"id": member_id.hex}
        )
        return dict(found.mappings().one())


def _put_back(sample_engine: Engine, member_id: uuid.UUID, **values: Any) -> None:
    """A database writer changes stored bytes behind casework's back."""
    with sample_engine.begin() as connection:
        connection.execute(update(MEMBERS).where(MEMBERS.c.id == member_id).values(values))


def _rename(sample_engine: Engine, keyring: Keyring, member_id: uuid.UUID, name: str) -> None:
    with open_session(sample_engine, keyring) as session:
        session.get_one(Member, member_id).full_name = name
        session.commit()


def _read_all(member: Member) -> dict[str, Any]:
    return {name: getattr(member, name) for name in FIELDS}


def test_each_value_is_opened_once_and_the_seal_checked_once(
    sample_engine: Engine, keyring: Keyring, counts: Counts
) -> None:
    stored = _stored(sample_engine, keyring)
    with open_session(sample_engine, keyring) as session:
        loaded = session.get_one(Member, stored.id)
        first = _read_all(loaded)
        again = _read_all(loaded)
        whole = columns.read_sealed(loaded, FIELDS)
    assert first == again == whole
    assert first["full_name"] == "Amina Yusuf"
    assert first["nickname"] is None
    assert counts.checked == 1
    assert counts.opened == 5  # nickname was never assigned: NULL, nothing to open


def test_values_written_here_are_read_back_without_opening(
    sample_engine: Engine, keyring: Keyring, counts: Counts
) -> None:
    with open_session(sample_engine, keyring) as session:
        member = _member(uuid.uuid4())
        provision_case_key(session, member.case_id)
        session.add(member)
        session.flush()
        assert _read_all(member)["phone"] == "+256 700 123456"
        member.nickname = "Mina"
        session.flush()
        assert member.nickname == "Mina"
        assert member.full_name == "Amina Yusuf"
    assert counts.opened == 0
    assert counts.checked == 0  # the image the first flush sealed is the one the second seals


def test_a_json_value_from_the_cache_is_a_fresh_copy(
    sample_engine: Engine, keyring: Keyring
) -> None:
    stored = _stored(sample_engine, keyring)
    with open_session(sample_engine, keyring) as session:
        loaded = session.get_one(Member, stored.id)
        needs = loaded.needs
        assert isinstance(needs, dict)
        needs["notes"] = "changed in place"
        needs["codes"].append("XX")
        assert loaded.needs == NEEDS
        assert columns.read_sealed(loaded, ["needs"])["needs"] == NEEDS


@pytest.mark.parametrize("reload", ["refresh", "expire", "expire_one", "populate_existing"])
def test_a_field_put_back_is_refused_after_a_reload_though_the_row_was_cached(
    sample_engine: Engine, keyring: Keyring, reload: str
) -> None:
    stored = _stored(sample_engine, keyring, "First Name")
    old = _raw(sample_engine, stored.id)
    _rename(sample_engine, keyring, stored.id, "Second Name")
    with open_session(sample_engine, keyring, expire_on_commit=False) as session:
        loaded = session.get_one(Member, stored.id)
        assert _read_all(loaded)["full_name"] == "Second Name"
        _put_back(sample_engine, stored.id, full_name=old["full_name"])  # the older name alone
        assert loaded.full_name == "Second Name"  # nothing reloaded yet: the image checked
        if reload == "refresh":
            session.refresh(loaded)
        elif reload == "expire":
            session.expire(loaded)
        elif reload == "expire_one":  # only the rolled-back column comes again
            session.expire(loaded, ["_full_name_ciphertext"])
        else:
            session.execute(
                select(Member)
                .where(Member.id == stored.id)
                .execution_options(populate_existing=True)
            ).scalar_one()
        for name in FIELDS:  # values read before included: the row image changed
            with pytest.raises(RowIntegrityError, match="sample_members row"):
                getattr(loaded, name)
        with pytest.raises(RowIntegrityError):
            columns.read_sealed(loaded, FIELDS)


def test_a_field_put_back_is_refused_in_a_new_session(
    sample_engine: Engine, keyring: Keyring
) -> None:
    stored = _stored(sample_engine, keyring, "First Name")
    old = _raw(sample_engine, stored.id)
    _rename(sample_engine, keyring, stored.id, "Second Name")
    _put_back(sample_engine, stored.id, full_name=old["full_name"])
    for name in FIELDS:
        with open_session(sample_engine, keyring) as session, pytest.raises(RowIntegrityError):
            getattr(session.get_one(Member, stored.id), name)


def test_ciphertexts_swapped_between_cached_rows_are_refused_on_reload(
    sample_engine: Engine, keyring: Keyring
) -> None:
    case_id = uuid.uuid4()
    first, second = _member(case_id, "First"), _member(case_id, "Second")
    with open_session(sample_engine, keyring, expire_on_commit=False) as session:
        provision_case_key(session, case_id)
        session.add_all([first, second])
        session.commit()
    one, two = _raw(sample_engine, first.id), _raw(sample_engine, second.id)
    with open_session(sample_engine, keyring) as session:
        rows = [session.get_one(Member, first.id), session.get_one(Member, second.id)]
        assert [row.full_name for row in rows] == ["First", "Second"]
        swap = ("full_name", "row_seal")
        _put_back(sample_engine, first.id, **{c: two[c] for c in swap})
        _put_back(sample_engine, second.id, **{c: one[c] for c in swap})
        for row in rows:
            session.refresh(row)
            with pytest.raises(RowIntegrityError):
                _ = row.full_name


def test_a_cached_value_is_not_served_once_its_ciphertext_changed(
    sample_engine: Engine, keyring: Keyring
) -> None:
    stored = _stored(sample_engine, keyring, "First Name")
    with open_session(sample_engine, keyring, expire_on_commit=False) as session:
        loaded = session.get_one(Member, stored.id)
        assert loaded.full_name == "First Name"
        _rename(sample_engine, keyring, stored.id, "Second Name")  # a legitimate write elsewhere
        assert loaded.full_name == "First Name"
        session.refresh(loaded)
        assert loaded.full_name == "Second Name"
        # The same bytes as the stored ones, but not the objects that were checked:
        # another cell's ciphertext set in process is checked with the whole row.
        other = _stored(sample_engine, keyring)
        loaded._full_name_ciphertext = _raw(sample_engine, other.id)["full_name"]  # type: ignore[attr-defined]
        with pytest.raises(RowIntegrityError):
            _ = loaded.phone


def test_a_field_put_back_is_not_laundered_by_a_write_to_another(
    sample_engine: Engine, keyring: Keyring
) -> None:
    stored = _stored(sample_engine, keyring, "First Name")
    old = _raw(sample_engine, stored.id)
    _rename(sample_engine, keyring, stored.id, "Second Name")
    _put_back(sample_engine, stored.id, full_name=old["full_name"])
    with open_session(sample_engine, keyring) as session:
        session.get_one(Member, stored.id).phone = "+256 700 000000"  # nothing read first
        with pytest.raises(RowIntegrityError):
            session.flush()
    with open_session(sample_engine, keyring) as session, pytest.raises(RowIntegrityError):
        _ = session.get_one(Member, stored.id).phone


def test_no_cached_value_outlives_a_shredded_key(sample_engine: Engine, keyring: Keyring) -> None:
    shredded, kept = (
        _stored(sample_engine, keyring, "Erased Person"),
        _stored(sample_engine, keyring),
    )
    with open_session(sample_engine, keyring) as session:
        gone = session.get_one(Member, shredded.id)
        stays = session.get_one(Member, kept.id)
        assert _read_all(gone)["full_name"] == "Erased Person"
        assert stays.full_name == "Amina Yusuf"
        shred(session, shredded.case_id)
        assert columns._OPENED_ATTRIBUTE not in gone.__dict__
        assert "Erased Person" not in repr(vars(gone))
        for name in FIELDS:
            with pytest.raises(MissingDataKeyError):
                getattr(gone, name)
        assert columns._OPENED_ATTRIBUTE in stays.__dict__
        assert stays.full_name == "Amina Yusuf"


def test_a_cached_value_needs_the_case_key_after_the_transaction_ended(
    sample_engine: Engine, keyring: Keyring, counts: Counts
) -> None:
    stored = _stored(sample_engine, keyring)
    with open_session(sample_engine, keyring, expire_on_commit=False) as session:
        loaded = session.get_one(Member, stored.id)
        assert loaded.full_name == "Amina Yusuf"
        session.commit()  # the key cache is emptied: the case's key is loaded again
        assert loaded.full_name == "Amina Yusuf"
        assert data_key_cache(session).unwraps == 2
        session.expunge(loaded)
        with pytest.raises(EncryptionContextError, match="not in a session"):
            _ = loaded.full_name
    assert counts.checked == 1
    assert counts.opened == 1


def test_a_cached_value_is_not_served_under_another_key(
    sample_engine: Engine, keyring: Keyring
) -> None:
    stored = _stored(sample_engine, keyring)
    with open_session(sample_engine, keyring) as session:
        loaded = session.get_one(Member, stored.id)
        assert loaded.full_name == "Amina Yusuf"
        keys = data_key_cache(session)
        keys.forget(stored.case_id)
        keys.remember(stored.case_id, DataKey(new_data_key()))  # not the key it was opened with
        with pytest.raises(RowIntegrityError):
            _ = loaded.full_name


def test_the_session_listeners_are_not_installed_at_import() -> None:
    code = (
        "from sqlalchemy import event\n"
        "from sqlalchemy.orm import Session\n"
        "import casework.db, casework.cases.models, casework.security.shredding\n"
        "from casework.security import case_keys, columns\n"
        "from casework.security.keyring import Keyring\n"
        "assert not event.contains(Session, 'before_flush', columns._seal_pending_values)\n"
        "assert not event.contains(Session, 'after_transaction_end',\n"
        "                          case_keys._end_of_unit_of_work)\n"
        "try:\n"
        "    case_keys.attach_keyring(Session(), Keyring.generate())\n"
        "except Exception as error:\n"
        "    print(type(error).__name__)\n"
        "columns.install_session_events()\n"
        "columns.install_session_events()\n"
        "assert event.contains(Session, 'before_flush', columns._seal_pending_values)\n"
        "case_keys.attach_keyring(Session(), Keyring.generate())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "EncryptionContextError"
