import pytest

from casework.security import framing
from casework.security.framing import length_prefixed


def test_each_part_is_preceded_by_its_four_byte_length() -> None:
    assert length_prefixed(b"ab", b"") == b"\x00\x00\x00\x02ab\x00\x00\x00\x00"


def test_moving_bytes_between_parts_changes_the_encoding() -> None:
    assert length_prefixed(b"ab", b"c") != length_prefixed(b"a", b"bc")
    assert length_prefixed(b"abc") != length_prefixed(b"ab", b"c")


def test_a_part_longer_than_its_prefix_can_count_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(framing, "MAX_PART_LENGTH", 3)
    assert length_prefixed(b"abc")
    with pytest.raises(ValueError, match="too long"):
        length_prefixed(b"abcd")
