"""Sealed attributes: encrypted, always present, and padded, so a row shows no value's shape.

Plain encrypted attributes (:mod:`casework.security.columns`) store ``None`` as
SQL NULL and a value as exactly its length plus 33 bytes. For case data that
is a leak: ``"male"`` and ``"female"`` differ in length, a NULL birth
registration marks an adult, the size of the needs list counts a household's
vulnerabilities. A :class:`Sealed` attribute therefore

* stores "no value" as an encrypted JSON ``null``, never as SQL NULL, and
* pads the JSON with trailing spaces to a multiple of its ``block`` bytes
  (JSON allows whitespace after a value, so the stored bytes are still the
  documented ``j`` encoding and decode with the shared JSON codec).

A block is chosen per attribute so that every value of a low-cardinality
field fills the same block, and free text leaks its length only to the block.
SQL NULL is written only by :func:`erase_ciphertext`, when a case is erased.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from casework.security.codecs import JSON, JSONValue
from casework.security.columns import PENDING_ATTRIBUTE, EncryptedField
from casework.security.errors import CodecError

T = TypeVar("T")


class PaddedJSON(Generic[T]):
    """A codec: the JSON of a value (``null`` for None), space-padded to ``block`` bytes."""

    def __init__(
        self,
        name: str,
        block: int,
        dump: Callable[[T], JSONValue],
        load: Callable[[JSONValue], T],
    ) -> None:
        self.name = f"json padded to {block} bytes"
        self.kind = name
        self.block = block
        self._dump = dump
        self._load = load

    def encode(self, value: T | None) -> bytes:
        raw = JSON.encode(None if value is None else self._dump(value))
        return raw + b" " * (-len(raw) % self.block)

    def decode(self, data: bytes) -> T | None:
        value = JSON.decode(data)
        return None if value is None else self._load(value)


def _expect(kind: type[T]) -> Callable[[JSONValue], T]:
    def load(value: JSONValue) -> T:
        if isinstance(value, bool) or not isinstance(value, kind):
            raise CodecError(f"stored value is not of type {kind.__name__}")
        return value

    return load


def _same(value: Any) -> JSONValue:
    result: JSONValue = value
    return result


def _load_date(value: JSONValue) -> datetime.date:
    if not isinstance(value, str):
        raise CodecError("stored value is not a date")
    return datetime.date.fromisoformat(value)


def _load_uuid(value: JSONValue) -> uuid.UUID:
    if not isinstance(value, str):
        raise CodecError("stored value is not an id")
    return uuid.UUID(value)


class Sealed(EncryptedField[T]):
    """An encrypted attribute that always stores a padded value; ``None`` included."""

    def encode_value(self, value: T | None) -> bytes:
        # Unlike EncryptedField, None is encoded (as a padded JSON null), not stored as NULL.
        return self.codec.encode(value)  # type: ignore[arg-type]


def sealed_text(block: int, **options: Any) -> Sealed[str]:
    """A sealed ``str``; free text leaks its length only to ``block`` bytes."""
    return Sealed(PaddedJSON("str", block, _same, _expect(str)), **options)  # type: ignore[arg-type]


def sealed_int(block: int, **options: Any) -> Sealed[int]:
    return Sealed(PaddedJSON("int", block, _same, _expect(int)), **options)  # type: ignore[arg-type]


def sealed_list(block: int, **options: Any) -> Sealed[list[Any]]:
    return Sealed(PaddedJSON("list", block, _same, _expect(list)), **options)  # type: ignore[arg-type]


def sealed_dict(block: int, **options: Any) -> Sealed[dict[str, Any]]:
    return Sealed(PaddedJSON("dict", block, _same, _expect(dict)), **options)  # type: ignore[arg-type]


def sealed_date(block: int, **options: Any) -> Sealed[datetime.date]:
    codec = PaddedJSON("date", block, lambda d: d.isoformat(), _load_date)
    return Sealed(codec, **options)  # type: ignore[arg-type]


def sealed_uuid(block: int, **options: Any) -> Sealed[uuid.UUID]:
    codec = PaddedJSON("uuid", block, lambda u: str(u), _load_uuid)
    return Sealed(codec, **options)  # type: ignore[arg-type]


def encrypted_fields(model: type[Any]) -> list[EncryptedField[Any]]:
    """Every encrypted attribute a model class declares (its own and inherited)."""
    found: dict[str, EncryptedField[Any]] = {}
    for klass in reversed(model.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, EncryptedField):
                found[name] = value
    return list(found.values())


def erase_ciphertext(obj: object) -> None:
    """Overwrite every ciphertext column of ``obj`` with NULL and drop unsaved values.

    Used only by erasure, after the case's data key is gone: nothing is
    encrypted again, the stored ciphertext is simply replaced.
    """
    obj.__dict__.pop(PENDING_ATTRIBUTE, None)
    for field in encrypted_fields(type(obj)):
        setattr(obj, field.storage_attr, None)
