"""The checkpoint formula: order-independent, and the documented example."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from casework_sync.checkpoint import checkpoint


def test_no_case_is_all_zeros() -> None:
    assert checkpoint([]) == (0, "0" * 64)


def test_one_case_is_its_sha256() -> None:
    assert checkpoint([("K7Q2M9XD4RA", 3)]) == (1, hashlib.sha256(b"K7Q2M9XD4RA:3").hexdigest())


@given(
    st.dictionaries(st.text("ABCDEFGHJK0123456789", min_size=11, max_size=11), st.integers(1, 99))
)
def test_order_does_not_matter_and_versions_count(pairs: dict[str, int]) -> None:
    items = list(pairs.items())
    assert checkpoint(items) == checkpoint(list(reversed(items)))
    if items:
        bumped = [(items[0][0], items[0][1] + 1), *items[1:]]
        assert checkpoint(bumped)[1] != checkpoint(items)[1]
