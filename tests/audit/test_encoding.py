"""The canonical entry encoding: pinned bytes, unambiguity, validation."""

from __future__ import annotations

import dataclasses
import struct
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from hashlib import sha256

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casework.audit.encoding import (
    ENCODING_VERSION,
    GENESIS_HASH,
    AuditRecord,
    ChainedRecord,
    body_around_target,
    body_parts,
    chain,
    check_target,
    derived,
    encode_body,
    encode_entry,
    encode_head,
    entry_hash,
    normalise_fields,
    pack_head,
    target_bytes,
)
from casework.audit.models import to_micros

AT = datetime(2025, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)
PREV = bytes(range(32))


def make_record(**changes: object) -> AuditRecord:
    values: dict[str, object] = {
        "seq": 7,
        "at": AT,
        "actor": "u-42",
        "role": "caseworker",
        "office": "nairobi",
        "device": None,
        "action": "case.read",
        "target": "C-8F3K2Q",
        "fields": ("date_of_birth", "family_name"),
        "outcome": "success",
        "request_id": "req-1",
    }
    values.update(changes)
    return AuditRecord(**values)  # type: ignore[arg-type]


def _text(value: str) -> bytes:
    data = value.encode()
    return len(data).to_bytes(4, "big") + data


def _optional(value: str | None) -> bytes:
    return b"\x00" if value is None else b"\x01" + _text(value)


def test_encoding_is_the_documented_layout() -> None:
    micros = (AT - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    expected = (
        b"\x01"
        + PREV
        + (7).to_bytes(8, "big")
        + micros.to_bytes(8, "big", signed=True)
        + _optional("u-42")
        + _optional("caseworker")
        + _optional("nairobi")
        + b"\x00"
        + _text("case.read")
        + _optional("C-8F3K2Q")
        + (2).to_bytes(4, "big")
        + _text("date_of_birth")
        + _text("family_name")
        + _text("success")
        + _optional("req-1")
    )
    assert encode_entry(PREV, make_record()) == expected
    assert entry_hash(PREV, make_record()) == sha256(expected).digest()


# A changed encoding would orphan every hash ever written: this value must never move.
PINNED_HASH = "2603d88de234643a0d354a5a7314fc2d31dcb4b1c0e7c7410a9264f82f41ae85"


def test_encoding_is_pinned() -> None:
    assert entry_hash(GENESIS_HASH, make_record(seq=1)).hex() == PINNED_HASH


def test_genesis_hash_is_32_zero_bytes() -> None:
    assert GENESIS_HASH == b"\x00" * 32


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ({"actor": None}, {"actor": ""}),
        ({"fields": ("a,b",)}, {"fields": ("a", "b")}),
        ({"fields": ("ab",)}, {"fields": ("a", "b")}),
        ({"actor": "x", "role": None}, {"actor": None, "role": "x"}),
        ({"target": "ab", "request_id": None}, {"target": "a", "request_id": "b"}),
        ({"at": AT}, {"at": AT + timedelta(microseconds=1)}),
        ({"seq": 7}, {"seq": 8}),
    ],
)
def test_near_identical_entries_encode_differently(
    left: dict[str, object], right: dict[str, object]
) -> None:
    assert encode_entry(PREV, make_record(**left)) != encode_entry(PREV, make_record(**right))


def test_prev_hash_is_part_of_the_hash() -> None:
    record = make_record()
    assert entry_hash(PREV, record) != entry_hash(GENESIS_HASH, record)


def test_times_before_the_epoch_and_multibyte_text_encode() -> None:
    old = make_record(at=datetime(1950, 1, 1, tzinfo=UTC), actor="ž\u00e9\U0001f600")
    decoded, _ = _decode(encode_entry(PREV, old))
    assert decoded == old


def test_equal_instants_in_other_utc_spellings_are_accepted() -> None:
    same = AT.astimezone(timezone(timedelta(0)))
    assert entry_hash(PREV, make_record(at=same)) == entry_hash(PREV, make_record())


def test_str_enum_values_encode_as_their_text() -> None:
    class Outcome(StrEnum):
        SUCCESS = "success"

    assert entry_hash(PREV, make_record(outcome=Outcome.SUCCESS)) == entry_hash(
        PREV, make_record(outcome="success")
    )


# A decoder written from the documented layout: if every encoding decodes back
# to its record and is consumed exactly, the encoding is injective.
def _decode(data: bytes) -> tuple[AuditRecord, bytes]:
    version, prev, seq, micros = struct.unpack_from(">B32sQq", data)
    assert version == 1
    offset = struct.calcsize(">B32sQq")

    def text() -> str:
        nonlocal offset
        (length,) = struct.unpack_from(">I", data, offset)
        value = data[offset + 4 : offset + 4 + length]
        assert len(value) == length
        offset += 4 + length
        return value.decode()

    def optional() -> str | None:
        nonlocal offset
        tag = data[offset]
        offset += 1
        assert tag in (0, 1)
        return text() if tag else None

    actor, role, office, device = optional(), optional(), optional(), optional()
    action, target = text(), optional()
    (count,) = struct.unpack_from(">I", data, offset)
    offset += 4
    fields = tuple(text() for _ in range(count))
    outcome, request_id = text(), optional()
    assert offset == len(data)
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    record = AuditRecord(
        seq, at, actor, role, office, device, action, target, fields, outcome, request_id
    )
    return record, prev


_texts = st.text(max_size=12)
_optional_texts = st.none() | _texts
records = st.builds(
    AuditRecord,
    seq=st.integers(1, 2**64 - 1),
    at=st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    actor=_optional_texts,
    role=_optional_texts,
    office=_optional_texts,
    device=_optional_texts,
    action=st.text(min_size=1, max_size=12),
    target=_optional_texts,
    fields=st.sets(_texts, max_size=4).map(lambda names: tuple(sorted(names))),
    outcome=st.sampled_from(["success", "denied", "failure"]),
    request_id=_optional_texts,
)


@settings(max_examples=300, deadline=None)
@given(record=records, prev=st.binary(min_size=32, max_size=32))
def test_every_encoding_decodes_back_exactly(record: AuditRecord, prev: bytes) -> None:
    assert _decode(encode_entry(prev, record)) == (record, prev)


@settings(max_examples=300, deadline=None)
@given(
    record=records,
    seq=st.integers(1, 2**64 - 1),
    target=_optional_texts,
    prev=st.binary(min_size=32, max_size=32),
)
def test_a_batch_validated_once_encodes_as_each_entry_validated_alone(
    record: AuditRecord, seq: int, target: str | None, prev: bytes
) -> None:
    """record_many encodes the shared parts once and copies the record without checking
    it again: the bytes and the record are those of the entry built on its own."""
    alone = dataclasses.replace(record, seq=seq, target=target)
    check_target(target)
    copy = derived(record, seq, target)
    assert copy == alone
    assert body_around_target(record)(target) == encode_body(alone)
    before, after = body_parts(record)
    assert before + target_bytes(target) + after == encode_body(alone)
    head = pack_head(ENCODING_VERSION, prev, seq, to_micros(record.at))
    assert head == encode_head(prev, seq, to_micros(record.at))
    assert entry_hash(prev, copy) == entry_hash(prev, alone)


@pytest.mark.parametrize("target", [42, b"ref", "C-\ud800"])
def test_a_target_that_cannot_be_encoded_is_refused_once_per_batch(target: object) -> None:
    with pytest.raises(ValueError, match=r"\w") as checked:
        check_target(target)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\w") as encoded:
        target_bytes(target)  # type: ignore[arg-type]
    assert type(encoded.value) is type(checked.value)
    assert str(encoded.value) == str(checked.value)
    with pytest.raises(ValueError, match=r"\w"):
        make_record(target=target)


def test_a_derived_record_checks_its_seq() -> None:
    with pytest.raises(ValueError, match=r"\w"):
        derived(make_record(), 0, "C-1")


@settings(max_examples=200, deadline=None)
@given(left=records, right=records)
def test_different_records_have_different_hashes(left: AuditRecord, right: AuditRecord) -> None:
    if left != right:
        assert entry_hash(PREV, left) != entry_hash(PREV, right)


def test_chain_seals_a_record() -> None:
    sealed = chain(PREV, make_record())
    assert sealed == ChainedRecord(make_record(), PREV, entry_hash(PREV, make_record()))
    assert sealed.seq == 7


def test_normalise_fields_sorts_and_deduplicates() -> None:
    assert normalise_fields(["b", "a", "b"]) == ("a", "b")
    assert normalise_fields(set()) == ()


@pytest.mark.parametrize(
    "changes",
    [
        {"seq": 0},
        {"seq": -1},
        {"seq": True},
        {"seq": 2**64},
        {"seq": 1.0},
        {"at": datetime(2025, 1, 1)},
        {"at": datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=2)))},
        {"at": "2025-01-01T00:00:00Z"},
        {"actor": 42},
        {"request_id": b"req"},
        {"action": ""},
        {"action": None},
        {"fields": ("b", "a")},
        {"fields": ("a", "a")},
        {"fields": ["a"]},
        {"fields": ("a", 1)},
        {"outcome": "ok"},
        {"actor": "\ud800"},
        {"action": "case.\udfff"},
        {"fields": ("a\ud800",)},
    ],
)
def test_records_that_cannot_be_encoded_canonically_are_refused(
    changes: dict[str, object],
) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        make_record(**changes)


def test_hashes_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="prev_hash"):
        encode_entry(b"short", make_record())
    with pytest.raises(ValueError, match="hash"):
        ChainedRecord(make_record(), PREV, b"\x00" * 31)
    with pytest.raises(ValueError, match="prev_hash"):
        ChainedRecord(make_record(), "00" * 32, PREV)  # type: ignore[arg-type]


def test_records_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_record().actor = "someone else"  # type: ignore[misc]


def test_error_messages_do_not_echo_values() -> None:
    with pytest.raises(ValueError, match="fields") as caught:
        make_record(fields=("zz-secret-name", "aa-secret-name"))
    assert "secret" not in str(caught.value)
