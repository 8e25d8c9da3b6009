import datetime
import enum
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


def _reference_check(value: object) -> None:
    """The JSON type check as first written (one isinstance walk): the behaviour its faster
    dispatch (codecs._check_json_types) must keep, offence for offence."""
    if isinstance(value, list):
        for item in value:
            _reference_check(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CodecError("JSON object keys must be strings")
            _reference_check(item)
    elif value is not None and not isinstance(value, bool | int | float | str):
        raise CodecError("value is not JSON: only None, bool, int, float, str, list and dict")


class _Level(enum.IntEnum):
    HIGH = 2


class _Text(str):
    pass


class _Items(list[Any]):
    pass


class _Fields(dict[Any, Any]):
    pass


_odd_scalars = st.sampled_from(
    [(1,), {1}, b"x", datetime.date(2020, 1, 1), _Level.HIGH, _Text("t"), 1.5, object()]
)
_odd_keys = st.text(max_size=3) | st.integers() | st.none() | st.booleans() | st.just(_Text("k"))
any_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5) | _odd_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=3).map(tuple)
        | st.lists(children, max_size=3).map(_Items)
        | st.dictionaries(_odd_keys, children, max_size=4)
        | st.dictionaries(st.text(max_size=3), children, max_size=4).map(_Fields)
    ),
    max_leaves=12,
)


def _outcome(check: Any, value: object) -> str | None:
    try:
        check(value)
    except CodecError as error:
        return str(error)
    return None


@settings(max_examples=2000, deadline=None)
@given(any_values)
def test_the_type_check_refuses_what_the_plain_walk_refuses(value: object) -> None:
    """The same values pass, and a refused one names the same first offence."""
    from casework.security.codecs import _check_json_types

    assert _outcome(_check_json_types, value) == _outcome(_reference_check, value)


def test_values_nested_too_deeply_are_refused() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(CodecError, match="nested too deeply"):
        JSON.encode(deep)
    with pytest.raises(CodecError, match="nested too deeply"):
        JSON.encode({"a": deep})


def test_a_lone_surrogate_in_json_text_is_refused() -> None:
    """The str short path fails where the encoder's text fails to encode (as UTF-8)."""
    with pytest.raises(CodecError, match="JSON numbers must be finite"):
        JSON.encode("lone \ud800")
    with pytest.raises(CodecError, match="JSON numbers must be finite"):
        JSON.encode(["lone \ud800"])


@pytest.mark.parametrize(
    "payload",
    [
        b'"a"',
        b'"a"   ',
        b'"a"\t',
        b'"a" \n ',
        b' "a"',
        b'"a" x',
        b'"a" "b"',
        b'"unterminated',
        b"[1,]",
        b"1.5e3  ",
        b"-0 ",
        b"NaN",
        b"[Infinity]",
        b'{"k": [1, {"n": null}]}  ',
        b"",
        b"   ",
    ],
)
def test_json_text_is_read_as_the_general_decoder_reads_it(payload: bytes) -> None:
    from casework.security.codecs import _DECODER

    try:
        expected: Any = _DECODER.decode(payload.decode("utf-8"))
    except ValueError:
        with pytest.raises(CodecError, match="stored JSON is malformed"):
            JSON.decode(b"j" + payload)
        return
    except CodecError as error:
        with pytest.raises(CodecError, match=str(error)):
            JSON.decode(b"j" + payload)
        return
    assert_identical(JSON.decode(b"j" + payload), expected)


@settings(max_examples=1000, deadline=None)
@given(json_values, st.text(" \t\r\nx", max_size=4), st.text(" \t\r\n", max_size=2))
def test_json_text_with_any_whitespace_is_read_as_the_decoder_reads_it(
    value: JSONValue, tail: str, head: str
) -> None:
    from casework.security.codecs import _DECODER

    text = head + JSON.encode(value)[1:].decode("utf-8") + tail
    try:
        expected: Any = _DECODER.decode(text)
    except ValueError:
        with pytest.raises(CodecError):
            JSON.decode(b"j" + text.encode("utf-8"))
        return
    assert_identical(JSON.decode(b"j" + text.encode("utf-8")), expected)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("Zoë", b'j"Zo\xc3\xab"' + b" " * 9),
        (None, b"jnull" + b" " * 11),
        ("", b'j""' + b" " * 13),
        ('a\u2028"\\\n', b'j"a\xe2\x80\xa8\\"\\\\\\n"' + b" " * 3),
    ],
)
def test_a_padded_text_is_the_pinned_bytes(value: str | None, encoded: bytes) -> None:
    from casework.security.columns import sealed_text

    codec = sealed_text(16).codec
    assert codec.encode(value) == encoded
    assert codec.decode(encoded) == value
