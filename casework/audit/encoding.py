"""The canonical byte encoding of an access-log entry, and the hash chain over it.

An entry's hash must be reproducible by anyone, forever, from the entry alone:
an auditor years from now, with another language and another database, must get
the same 32 bytes. So the bytes that are hashed are defined here, field by field,
and never depend on a library's serialisation (JSON key order, float formatting,
time-zone rendering).

Encoding version 1 (all integers big-endian)::

    u8        version                  0x01
    32 bytes  prev_hash                hash of the previous entry; GENESIS_HASH for seq 1
    u64       seq                      1, 2, 3, ...
    i64       at                       microseconds since 1970-01-01T00:00:00Z
    opt-str   actor
    opt-str   role
    opt-str   office
    opt-str   device
    str       action
    opt-str   target
    u32       number of field names, then each as str (sorted by code point, unique)
    str       outcome
    opt-str   request_id

    str     = u32 byte length, then the UTF-8 bytes
    opt-str = 0x00 (absent) | 0x01 then str

The time is an integer count of microseconds rather than an ISO-8601 string
because an integer has exactly one rendering: no choice between ``Z`` and
``+00:00``, no trailing-zero or leap-second questions. Every variable-length
value carries its length, and absence is a distinct tag, so no two different
entries share an encoding (``None`` differs from ``""``, ``["a,b"]`` from
``["a", "b"]``). The entry hash is SHA-256 over these bytes; the sequence number
is inside them, so an entry cannot be moved to another position without its hash
changing. Text is hashed exactly as given (no Unicode normalisation), so the
service must store what it hashed.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from hashlib import sha256
from typing import Any

ENCODING_VERSION = 1
HASH_SIZE = 32
GENESIS_HASH = bytes(HASH_SIZE)
"""The ``prev_hash`` of entry 1: there is nothing before it."""

OUTCOMES = frozenset({"success", "denied", "failure"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_HEAD = struct.Struct(">B32sQq")
pack_head = _HEAD.pack
"""``pack_head(ENCODING_VERSION, prev_hash, seq, at_us)`` is :func:`encode_head` without
the call around it (a group commit seals entries in a loop)."""
_pack_u32 = struct.Struct(">I").pack
_pack_present = struct.Struct(">BI").pack
_ABSENT = b"\x00"
_PRESENT = 1
_MAX_SEQ = 2**64 - 1


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What an access-log entry says, without its place in the hash chain.

    Validated on construction so that an entry that cannot be encoded
    canonically (a naive time, unsorted field names) never reaches the chain.
    """

    seq: int
    at: datetime
    actor: str | None
    role: str | None
    office: str | None
    device: str | None
    action: str
    target: str | None
    fields: tuple[str, ...]
    outcome: str
    request_id: str | None

    def __post_init__(self) -> None:
        _check_seq(self.seq)
        _check_time(self.at)
        for value in (self.actor, self.role, self.office, self.device, self.target):
            _check_optional_text(value)
        _check_optional_text(self.request_id)
        if not isinstance(self.action, str) or not self.action:
            raise ValueError("action must be a non-empty string")
        _check_encodable(self.action)
        _check_fields(self.fields)
        if self.outcome not in OUTCOMES:
            raise ValueError("outcome must be one of success, denied, failure")


@dataclass(frozen=True, slots=True)
class ChainedRecord:
    """An entry as stored: its content, the hash it links to and its own hash."""

    record: AuditRecord
    prev_hash: bytes
    hash: bytes

    def __post_init__(self) -> None:
        _check_hash(self.prev_hash, "prev_hash")
        _check_hash(self.hash, "hash")

    @property
    def seq(self) -> int:
        return self.record.seq


def normalise_fields(names: Iterable[str]) -> tuple[str, ...]:
    """Return field names in their canonical form: sorted, each once."""
    return tuple(sorted(set(names)))


def encode_entry(prev_hash: bytes, record: AuditRecord) -> bytes:
    """Return the version-1 canonical encoding of ``record`` linked to ``prev_hash``."""
    if len(prev_hash) != HASH_SIZE:
        raise ValueError("prev_hash must be 32 bytes")
    return encode_head(prev_hash, record.seq, (record.at - _EPOCH) // _MICROSECOND) + encode_body(
        record
    )


def encode_head(prev_hash: bytes, seq: int, at_us: int) -> bytes:
    """The first part of the encoding: version, link, seq and time (``at_us`` microseconds)."""
    return _HEAD.pack(ENCODING_VERSION, prev_hash, seq, at_us)


def encode_body(record: AuditRecord) -> bytes:
    """The rest of the encoding, from the actor on: it does not depend on the entry's place
    in the chain, so a group commit computes it before it takes the log's lock."""
    # This runs once per entry when verifying millions: one join over a flat tuple,
    # and the values that repeat from entry to entry (actors, roles, offices,
    # devices, actions, field names, outcomes) encoded once through a small cache.
    return b"".join(
        (
            _common_optional(record.actor),
            _common_optional(record.role),
            _common_optional(record.office),
            _common_optional(record.device),
            _common_text(record.action),
            _optional(record.target),
            _pack_u32(len(record.fields)),
            *map(_common_text, record.fields),
            _common_text(record.outcome),
            _optional(record.request_id),
        )
    )


def body_around_target(record: AuditRecord) -> Callable[[str | None], bytes]:
    """:func:`encode_body` of ``record`` about another target, the parts around the target
    encoded once: a list of 50 cases records 50 entries that differ only there."""
    before, after = body_parts(record)
    return lambda target: before + _optional(target) + after


def body_parts(record: AuditRecord) -> tuple[bytes, bytes]:
    """:func:`encode_body` of ``record`` before and after its target: the body about a
    target is ``before + target_bytes(target) + after``."""
    before = b"".join(
        (
            _common_optional(record.actor),
            _common_optional(record.role),
            _common_optional(record.office),
            _common_optional(record.device),
            _common_text(record.action),
        )
    )
    after = b"".join(
        (
            _pack_u32(len(record.fields)),
            *map(_common_text, record.fields),
            _common_text(record.outcome),
            _optional(record.request_id),
        )
    )
    return before, after


def check_target(target: str | None) -> None:
    """Raise ValueError when ``target`` could not be an entry's target (see AuditRecord)."""
    _check_optional_text(target)


def target_bytes(target: str | None) -> bytes:
    """``target`` as the encoding holds it, checked first as :func:`check_target` does
    (the same ValueError): one call per entry of a list page instead of four."""
    if target is None:
        return _ABSENT
    if not isinstance(target, str):
        raise ValueError("text fields must be strings or None")
    try:
        data = target.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode without lone surrogates") from None
    return _pack_present(_PRESENT, len(data)) + data


def derived(record: AuditRecord, seq: int, target: str | None) -> AuditRecord:
    """``record`` at ``seq`` about ``target``, without validating the other fields again.

    They were validated when ``record`` was built; ``target`` must have passed
    :func:`check_target`. A batch validates what its entries share once.
    """
    _check_seq(seq)
    copy = object.__new__(AuditRecord)
    for name in _RECORD_FIELDS:
        object.__setattr__(copy, name, getattr(record, name))
    object.__setattr__(copy, "seq", seq)
    object.__setattr__(copy, "target", target)
    return copy


_RECORD_FIELDS = tuple(field.name for field in dataclasses.fields(AuditRecord))


def entry_hash(prev_hash: bytes, record: AuditRecord) -> bytes:
    """Return SHA-256 over the canonical encoding: the entry's link in the chain."""
    return sha256(encode_entry(prev_hash, record)).digest()


def chain(prev_hash: bytes, record: AuditRecord) -> ChainedRecord:
    """Seal ``record`` after the entry whose hash is ``prev_hash``."""
    return ChainedRecord(record, prev_hash, entry_hash(prev_hash, record))


def _text(value: str) -> bytes:
    data = value.encode("utf-8")
    return _pack_u32(len(data)) + data


def _optional(value: str | None) -> bytes:
    if value is None:
        return _ABSENT
    data = value.encode("utf-8")
    return _pack_present(_PRESENT, len(data)) + data


_common_text = lru_cache(maxsize=4096)(_text)
_common_optional = lru_cache(maxsize=4096)(_optional)


# --- Hashing stored rows without building records (verification, integration). ---

MIN_MICROS = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND
MAX_MICROS = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND
_FIELD_CACHE_SIZE = 4096
_encoded_fields: dict[str, bytes | None] = {}


def _fields_bytes(stored: str) -> bytes | None:
    """The encoding of a stored JSON list of field names, or None when it is not a valid one
    (not a list of unique strings sorted by code point, or not encodable)."""
    try:
        return _encoded_fields[stored]
    except KeyError:
        pass
    encoded: bytes | None
    try:
        names = json.loads(stored)
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise ValueError("not a list of names")
        _check_fields(tuple(names))
        encoded = b"".join((_pack_u32(len(names)), *map(_text, names)))
    except (TypeError, ValueError):
        encoded = None
    if len(_encoded_fields) >= _FIELD_CACHE_SIZE:
        _encoded_fields.clear()
    _encoded_fields[stored] = encoded
    return encoded


def stored_row_hash(row: Sequence[Any]) -> bytes | None:
    """SHA-256 over the canonical encoding of a stored row, linked to its own ``prev_hash``.

    ``row`` holds the columns in the order of ``models.ENTRY_COLUMNS`` (seq,
    at_us, actor, role, office, device, action, target, fields, outcome,
    request_id, prev_hash, hash). Returns None when the row is not plainly a
    valid entry (a value of another type, an empty action, unknown outcome,
    malformed field list, a time outside the calendar, a hash not of 32
    bytes...): the caller then takes the slow path through
    :class:`AuditRecord`, which names the fault exactly as before. For a valid
    row the result equals :func:`entry_hash` over the record the row stores.
    This is the verifier's hot loop: no record objects, no datetimes.
    """
    (seq, at_us, actor, role, office, device, action, target, fields, outcome, request_id,
     prev_hash, stored) = row  # fmt: skip
    if (
        type(seq) is not int
        or not 1 <= seq <= _MAX_SEQ
        or type(at_us) is not int
        or not MIN_MICROS <= at_us <= MAX_MICROS
        or type(action) is not str
        or not action
        or type(outcome) is not str
        or outcome not in OUTCOMES
        or type(fields) is not str
        or type(prev_hash) is not bytes
        or len(prev_hash) != HASH_SIZE
        or type(stored) is not bytes
        or len(stored) != HASH_SIZE
    ):
        return None
    encoded_fields = _fields_bytes(fields)
    if encoded_fields is None:
        return None
    try:
        # target and request_id inline (as _optional): they rarely repeat.
        if target is None:
            target_bytes = _ABSENT
        else:
            target_bytes = target.encode("utf-8")
            target_bytes = _pack_present(_PRESENT, len(target_bytes)) + target_bytes
        if request_id is None:
            request_bytes = _ABSENT
        else:
            request_bytes = request_id.encode("utf-8")
            request_bytes = _pack_present(_PRESENT, len(request_bytes)) + request_bytes
        return sha256(
            b"".join(
                (
                    _HEAD.pack(ENCODING_VERSION, prev_hash, seq, at_us),
                    _common_optional(actor),
                    _common_optional(role),
                    _common_optional(office),
                    _common_optional(device),
                    _common_text(action),
                    target_bytes,
                    encoded_fields,
                    _common_text(outcome),
                    request_bytes,
                )
            )
        ).digest()
    except (AttributeError, TypeError, ValueError):  # not text, or not encodable
        return None


def _check_seq(seq: int) -> None:
    if type(seq) is not int or not 1 <= seq <= _MAX_SEQ:
        raise ValueError("seq must be an integer from 1")


def _check_time(at: datetime) -> None:
    # A naive time is ambiguous, and a non-UTC offset would survive a round trip
    # through the database differently on each backend: demand UTC.
    if not isinstance(at, datetime) or at.utcoffset() != timedelta(0):
        raise ValueError("at must be a timezone-aware UTC datetime")


def _check_optional_text(value: str | None) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ValueError("text fields must be strings or None")
    _check_encodable(value)


def _check_encodable(value: str) -> None:
    # A lone surrogate (say, from a JSON "\ud800" escape) has no UTF-8 form: refuse
    # it here rather than let hashing fail later, in the middle of a verification.
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text must be valid Unicode without lone surrogates") from None


def _check_fields(fields: tuple[str, ...]) -> None:
    if not isinstance(fields, tuple) or not all(isinstance(name, str) for name in fields):
        raise ValueError("fields must be a tuple of strings")
    for name in fields:
        _check_encodable(name)
    if any(left >= right for left, right in itertools.pairwise(fields)):
        raise ValueError("fields must be sorted and unique (see normalise_fields)")


def _check_hash(value: bytes, name: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ValueError(f"{name} must be 32 bytes")
