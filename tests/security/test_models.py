import uuid

from sqlalchemy import LargeBinary

from casework.db import Base
from casework.security.envelope import WrappedKey
from casework.security.models import CaseKey


def test_case_keys_table_follows_the_naming_convention() -> None:
    table = Base.metadata.tables["case_keys"]
    assert table.primary_key.name == "pk_case_keys"
    assert [c.name for c in table.primary_key.columns] == ["case_id"]
    assert {index.name for index in table.indexes} == {"ix_case_keys_kek_id_case_id"}
    (walk,) = table.indexes  # a re-wrap batch is a range scan of one KEK's keys
    assert [c.name for c in walk.columns] == ["kek_id", "case_id"]
    assert isinstance(table.c.wrapped_key.type, LargeBinary)
    assert not table.c.wrapped_key.nullable
    assert table.c.rotated_at.nullable


def test_wrapped_and_store_convert_to_and_from_wrapped_keys() -> None:
    row = CaseKey(case_id=uuid.uuid4(), kek_id="0123abcd", wrapped_key=b"\x01" * 61)
    assert row.wrapped() == WrappedKey("0123abcd", b"\x01" * 61)
    row.store(WrappedKey("ffff0000", b"\x01" + b"\x02" * 60))
    assert (row.kek_id, row.wrapped_key) == ("ffff0000", b"\x01" + b"\x02" * 60)
    assert repr(row) == f"CaseKey(case_id={row.case_id}, kek_id='ffff0000')"
