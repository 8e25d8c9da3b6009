"""Typed values to and from the bytes that get encrypted.

Each encoding starts with a one-byte type tag, so a column whose declared
type changed without a data migration fails loudly (CodecError) instead of
returning a misread value. Encodings are exact: every value round-trips.

====  ======  ============================================================
tag   type    payload
====  ======  ============================================================
``s`` str     UTF-8 (strings with lone surrogates are refused)
``d`` date    proleptic Gregorian ordinal, 4 bytes big-endian
``i`` int     two's complement, big-endian, ``bit_length // 8 + 1`` bytes
``j`` JSON    compact UTF-8 JSON, keys sorted; NaN and infinities refused
====  ======  ============================================================
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

from casework.security.errors import CodecError

JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None
T = TypeVar("T")


class Codec(Protocol[T]):
    """Turns values of one Python type into bytes and back."""

    name: str

    def encode(self, value: T) -> bytes:
        """Return the tagged bytes for ``value``; raise CodecError for a value of another type."""
        ...

    def decode(self, data: bytes) -> T:
        """Return the value encoded in ``data``; raise CodecError if the tag or payload is wrong."""
        ...


class _TaggedCodec(Generic[T]):
    """Shared tag handling; subclasses convert the payload."""

    name = ""
    tag = b""

    def encode(self, value: T) -> bytes:
        return self.tag + self._encode(value)

    def decode(self, data: bytes) -> T:
        if data[:1] != self.tag:
            raise CodecError(f"stored value is not of type {self.name}")
        return self._decode(data[1:])

    def _encode(self, value: T) -> bytes:
        raise NotImplementedError

    def _decode(self, payload: bytes) -> T:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<codec {self.name}>"


class TextCodec(_TaggedCodec[str]):
    name = "str"
    tag = b"s"

    def _encode(self, value: str) -> bytes:
        if not isinstance(value, str):
            raise CodecError("expected a str")
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            raise CodecError("text contains characters that are not valid Unicode") from None

    def _decode(self, payload: bytes) -> str:
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            raise CodecError("stored text is not valid UTF-8") from None


class DateCodec(_TaggedCodec[datetime.date]):
    name = "date"
    tag = b"d"

    def _encode(self, value: datetime.date) -> bytes:
        # A datetime is a date subclass; storing one here would silently drop its time.
        if not isinstance(value, datetime.date) or isinstance(value, datetime.datetime):
            raise CodecError("expected a date (not a datetime)")
        return value.toordinal().to_bytes(4, "big")

    def _decode(self, payload: bytes) -> datetime.date:
        ordinal = int.from_bytes(payload, "big")
        if len(payload) != 4 or not 1 <= ordinal <= datetime.date.max.toordinal():
            raise CodecError("stored date is malformed")
        return datetime.date.fromordinal(ordinal)


class IntCodec(_TaggedCodec[int]):
    name = "int"
    tag = b"i"

    def _encode(self, value: int) -> bytes:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CodecError("expected an int (not a bool)")
        return value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True)

    def _decode(self, payload: bytes) -> int:
        if not payload:
            raise CodecError("stored int is malformed")
        return int.from_bytes(payload, "big", signed=True)


def _refuse_constant(name: str) -> Any:
    raise CodecError("stored JSON contains a non-finite number")


#: The scalar types a JSON value may hold, exactly (a subclass takes the isinstance path).
_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})
_STR_TYPE = frozenset({str})


def _check_json_types(value: object) -> None:
    """Refuse what ``json.dumps`` would silently alter: int keys become str, tuples lists.

    Exact types are dispatched on without ``isinstance``, and a container's scalars are
    cleared by one set comparison over their types; only containers are descended
    into. The first offence found, and its error, are those of the plain walk
    (:func:`_check_json_types_walk`): items are visited in the same order."""
    kind = type(value)
    items: Any
    if kind is dict:
        items = value.values()  # type: ignore[attr-defined]
        if not _STR_TYPE.issuperset(map(type, value)):  # type: ignore[call-overload]
            _check_json_types_walk(value)  # a key that is no exact str: keys in order
            return
    elif kind is list:
        items = value
    elif kind in _SCALAR_TYPES:
        return
    else:
        _check_json_types_walk(value)
        return
    if _SCALAR_TYPES.issuperset(map(type, items)):
        return
    for item in items:
        if type(item) not in _SCALAR_TYPES:
            _check_json_types(item)


def _check_json_types_walk(value: object) -> None:
    """The plain walk (by ``isinstance``): what :func:`_check_json_types` refuses, and
    where it goes for subclasses of the JSON types."""
    if isinstance(value, list):
        for item in value:
            _check_json_types(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CodecError("JSON object keys must be strings")
            _check_json_types(item)
    elif value is not None and not isinstance(value, bool | int | float | str):
        raise CodecError("value is not JSON: only None, bool, int, float, str, list and dict")


# One encoder and one decoder for every value: ``json.dumps``/``json.loads`` with
# keywords build a new one per call.
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
)
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


_encode_str = json.encoder.encode_basestring  # the encoder's own (C) string writer

#: The encoder's text of the scalars most sealed values are (an absent value is
#: ``null``), without building its iterator per call: exactly what it writes for them
#: (a str as its ``ensure_ascii=False`` string writer does; a lone surrogate then fails
#: to encode as UTF-8, a ValueError, as it does after the encoder).
_SCALAR_TEXT: dict[type, Any] = {
    type(None): lambda _value: b"null",
    bool: lambda value: b"true" if value else b"false",
    int: lambda value: int.__repr__(value).encode("ascii"),
    str: lambda value: _encode_str(value).encode("utf-8"),
}


#: The three JSON constants (an absent value is a padded ``null``), read without the
#: decoder: as it reads them, with only spaces after.
_CONSTANTS: dict[bytes, bool | None] = {b"null": None, b"true": True, b"false": False}
_NOT_A_CONSTANT = object()

#: The decoder's scanner: ``_DECODER.decode(text)`` is ``scan(text, 0)`` when the text
#: starts with a value and ends with it; any other text (leading whitespace, other text
#: after it, malformed) goes to the decoder itself.
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]
_JSON_TAG = b"j"


def _json_bytes(value: JSONValue) -> bytes:
    """The JSON codec's payload for ``value`` (without its tag)."""
    scalar = _SCALAR_TEXT.get(type(value))
    try:
        if scalar is not None:
            encoded: bytes = scalar(value)
            return encoded
        _check_json_types(value)
        return _ENCODER.encode(value).encode("utf-8")
    except RecursionError:
        raise CodecError("JSON value is nested too deeply or contains itself") from None
    except ValueError:
        raise CodecError("JSON numbers must be finite (no NaN or infinity)") from None


def _json_value(payload: bytes) -> JSONValue:
    """The value of a JSON codec's payload (without its tag), as the one decoder reads it.

    A value is complete at its last character that is not a space (padding is spaces), so
    the scanner reads the text without its trailing spaces; the decoder reads any text the
    scanner does not consume whole, and says what is wrong with it."""
    stripped = payload.rstrip(b" ")
    constant = _CONSTANTS.get(stripped, _NOT_A_CONSTANT)
    if constant is not _NOT_A_CONSTANT:  # what the decoder gives for it, padded or not
        return constant  # type: ignore[return-value]
    try:
        text = stripped.decode("utf-8")
        try:
            value, end = _SCAN(text, 0)
        except (StopIteration, ValueError):
            end = -1
        if end != len(text):
            value = _DECODER.decode(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CodecError("stored JSON is malformed") from None
    return value


class JSONCodec(_TaggedCodec[JSONValue]):
    name = "json"
    tag = _JSON_TAG

    def encode(self, value: JSONValue) -> bytes:
        return _JSON_TAG + _json_bytes(value)

    def decode(self, data: bytes) -> JSONValue:
        if data[:1] != _JSON_TAG:
            raise CodecError(f"stored value is not of type {self.name}")
        return _json_value(data[1:])

    def _encode(self, value: JSONValue) -> bytes:
        return _json_bytes(value)

    def _decode(self, payload: bytes) -> JSONValue:
        return _json_value(payload)


TEXT = TextCodec()
DATE = DateCodec()
INT = IntCodec()
JSON = JSONCodec()

_BY_TYPE: dict[type, Codec[Any]] = {
    str: TEXT,
    datetime.date: DATE,
    int: INT,
    dict: JSON,
    list: JSON,
}


def codec_for(python_type: type) -> Codec[Any]:
    """Return the codec for ``str``, ``date``, ``int``, or ``dict``/``list`` (JSON)."""
    try:
        return _BY_TYPE[python_type]
    except KeyError:
        supported = ", ".join(t.__name__ for t in _BY_TYPE)
        raise CodecError(f"no encrypted codec for this type; supported: {supported}") from None
