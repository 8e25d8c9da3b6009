"""The row seal's bytes are a stored format: a seal computed today must equal the one a
row written by any earlier version carries, and the batch reader of a list page checks
exactly what the one-row reader checks."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, text

from casework.security.case_keys import data_key_cache, provision_case_key
from casework.security.columns import RowIds, row_seal, row_seal_for, sealed_columns
from casework.security.envelope import DataKey, field_aad_ids
from casework.security.keyring import Keyring

from .sample_models import Member, open_session


def test_a_row_seal_is_the_pinned_vector() -> None:
    key = DataKey(bytes(range(32)))
    ids = RowIds(uuid.UUID(int=1), uuid.UUID(int=2))
    seal = row_seal(key, "case_members", ids, 7, [("a_col", b"\x01\x02"), ("b", None), ("c", b"")])
    assert seal.hex() == (
        "00000000000000077cecdb5c7904124b72737b6f49586ef1bb1215b94ac7460a78ce4466bbb37279"
    )


@pytest.mark.parametrize(
    "case_id", [uuid.UUID(int=0), uuid.UUID("8f14e45f-ceea-467f-a0e6-9b1c3a2b7d51")]
)
def test_a_case_row_frames_its_ids_as_field_aad_ids(case_id: uuid.UUID) -> None:
    """``read_sealed_rows`` frames a case row's ids inline; the bytes must not drift."""
    framed = (16).to_bytes(4, "big") + case_id.bytes
    assert field_aad_ids(case_id, case_id) == framed + framed


def test_a_flushed_row_carries_row_seal_over_its_stored_columns(
    sample_engine: Engine, keyring: Keyring
) -> None:
    """The writer (a flush, then an update: counters 1 and 2) and the one-row and bulk
    helpers compute exactly :func:`row_seal` over the stored columns (the pinned vector's
    function), so no seal writer can drift from the format."""
    case_id = uuid.uuid4()
    with open_session(sample_engine, keyring, expire_on_commit=False) as session:
        provision_case_key(session, case_id)
        member = Member(case_id=case_id, full_name="Amina Yusuf", household_size=5)
        session.add(member)
        session.commit()
        member.phone = "+256 700 123456"
        session.commit()
    with sample_engine.connect() as connection:
        raw = dict(
            connection.execute(
                text("SELECT * FROM sample_members WHERE id = :id"), {"id": member.id.hex}
            )
            .mappings()
            .one()
        )
    ids = RowIds(case_id, member.id)
    columns = [(column, raw[column]) for column, _attr in sealed_columns(Member)]
    with open_session(sample_engine, keyring) as session:
        key = data_key_cache(session).get(case_id)
        assert raw["row_seal"] == row_seal(key, "sample_members", ids, 2, columns)
        assert row_seal_for(Member, key, ids, raw) == row_seal(
            key, "sample_members", ids, 1, columns
        )
