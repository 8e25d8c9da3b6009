import datetime
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casework.security.codecs import DATE, INT, JSON, TEXT, JSONValue, codec_for
from casework.security.errors import CodecError

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)


def assert_identical(decoded: Any, original: Any) -> None:
    """Equal and of the same types all the way down (1 == True == 1.0 is not enough)."""
    assert type(decoded) is type(original)
    if isinstance(original, list):
        assert len(decoded) == len(original)
        for left, right in zip(decoded, original, strict=True):
            assert_identical(left, right)
    elif isinstance(original, dict):
        assert decoded.keys() == original.keys()
        for key in original:
            assert_identical(decoded[key], original[key])
    elif isinstance(original, float):
        assert decoded == original
        assert math.copysign(1, decoded) == math.copysign(1, original)
    else:
        assert decoded == original


@settings(max_examples=1000, deadline=None)
@given(st.text())
def test_any_unicode_string_round_trips(value: str) -> None:
    assert_identical(TEXT.decode(TEXT.encode(value)), value)


@settings(max_examples=1000, deadline=None)
@given(st.dates())
def test_any_date_round_trips(value: datetime.date) -> None:
    assert_identical(DATE.decode(DATE.encode(value)), value)


@settings(max_examples=1000, deadline=None)
@given(json_values)
def test_any_json_value_round_trips(value: JSONValue) -> None:
    assert_identical(JSON.decode(JSON.encode(value)), value)


@settings(max_examples=1000, deadline=None)
@given(st.integers() | st.integers(min_value=-(2**300), max_value=2**300))
def test_any_int_round_trips(value: int) -> None:
    assert_identical(INT.decode(INT.encode(value)), value)


@pytest.mark.parametrize(
    ("codec", "value", "encoded"),
    [
        (TEXT, "Zoë", b"sZo\xc3\xab"),
        (DATE, datetime.date(1, 1, 1), b"d\x00\x00\x00\x01"),
        (INT, 0, b"i\x00"),
        (INT, -1, b"i\xff"),
        (INT, 127, b"i\x7f"),
        (INT, 128, b"i\x00\x80"),
        (JSON, {"b": [1, None], "a": "é"}, 'j{"a":"é","b":[1,null]}'.encode()),
    ],
)
def test_encodings_are_tagged_and_documented(codec: Any, value: Any, encoded: bytes) -> None:
    assert codec.encode(value) == encoded


@pytest.mark.parametrize(
    ("codec", "value"),
    [
        (TEXT, b"bytes"),
        (TEXT, 3),
        (TEXT, "lone surrogate \ud800"),
        (DATE, datetime.datetime(2020, 1, 1, 12, 0)),
        (DATE, "2020-01-01"),
        (INT, True),
        (INT, 1.0),
        (INT, "1"),
        (JSON, float("nan")),
        (JSON, [float("inf")]),
        (JSON, {1: "int key"}),
        (JSON, ("tuple",)),
        (JSON, {"set": {1}}),
        (JSON, b"bytes"),
    ],
)
def test_values_of_the_wrong_type_are_refused(codec: Any, value: Any) -> None:
    with pytest.raises(CodecError):
        codec.encode(value)


def test_self_containing_json_is_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(CodecError, match="contains itself"):
        JSON.encode(loop)


@pytest.mark.parametrize(
    ("codec", "data"),
    [
        (TEXT, b"d\x00\x00\x00\x01"),
        (TEXT, b"s\xff"),
        (DATE, b"d\x00\x00\x01"),
        (DATE, b"d\x00\x00\x00\x00"),
        (DATE, b"d\xff\xff\xff\xff"),
        (INT, b"i"),
        (JSON, b"j{"),
        (JSON, b"jNaN"),
        (JSON, b"j\xff"),
        (JSON, b""),
    ],
)
def test_malformed_or_mistyped_bytes_are_refused(codec: Any, data: bytes) -> None:
    with pytest.raises(CodecError):
        codec.decode(data)


def test_codec_for_maps_python_types() -> None:
    assert codec_for(str) is TEXT
    assert codec_for(datetime.date) is DATE
    assert codec_for(int) is INT
    assert codec_for(dict) is JSON
    assert codec_for(list) is JSON
    with pytest.raises(CodecError, match="supported: str, date, int, dict, list"):
        codec_for(float)


@settings(max_examples=1000, deadline=None)
@given(json_values | st.integers(min_value=-(2**300), max_value=2**300))
def test_json_bytes_are_the_general_encoders(value: JSONValue) -> None:
    """The scalars' short path writes exactly what the one encoder writes (a stored format)."""
    from casework.security.codecs import _ENCODER

    assert JSON.encode(value) == b"j" + _ENCODER.encode(value).encode("utf-8")


@settings(max_examples=1000, deadline=None)
@given(json_values, st.integers(min_value=0, max_value=40))
def test_padded_json_decodes_as_the_general_decoder_reads_it(value: JSONValue, pad: int) -> None:
    """The constants' short path reads exactly what the one decoder reads."""
    from casework.security.codecs import _DECODER

    encoded = JSON.encode(value) + b" " * pad
    assert_identical(JSON.decode(encoded), _DECODER.decode(encoded[1:].decode("utf-8")))


@pytest.mark.parametrize("payload", [b" null", b"null\\n", b"nul", b"None", b"null x", b"[null]"])
def test_other_text_near_a_constant_goes_to_the_decoder(payload: bytes) -> None:
    from casework.security.codecs import _DECODER

    try:
        expected: Any = _DECODER.decode(payload.decode("utf-8"))
    except ValueError:
        with pytest.raises(CodecError):
            JSON.decode(b"j" + payload)
        return
    assert_identical(JSON.decode(b"j" + payload), expected)
