"""The row seal's bytes are a stored format: a seal computed today must equal the one a
row written by any earlier version carries, and the batch reader of a list page checks
exactly what the one-row reader checks."""

from __future__ import annotations

import uuid

import pytest

from casework.security.columns import RowIds, row_seal
from casework.security.envelope import DataKey, field_aad_ids


def test_a_row_seal_is_the_pinned_vector() -> None:
    key = DataKey(bytes(range(32)))
    ids = RowIds(uuid.UUID(int=1), uuid.UUID(int=2))
    seal = row_seal(key, "case_members", ids, 7, [("a_col", b"\x01\x02"), ("b", None), ("c", b"")])
    assert seal.hex() == (
        "00000000000000077cecdb5c7904124b72737b6f49586ef1bb1215b94ac7460a78ce4466bbb37279"
    )


@pytest.mark.parametrize("case_id", [uuid.UUID(int=0), uuid.uuid4()])
def test_a_case_row_frames_its_ids_as_field_aad_ids(case_id: uuid.UUID) -> None:
    """``read_sealed_rows`` frames a case row's ids inline; the bytes must not drift."""
    framed = (16).to_bytes(4, "big") + case_id.bytes
    assert field_aad_ids(case_id, case_id) == framed + framed
