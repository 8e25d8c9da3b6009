import uuid
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casework.security.envelope import (
    FIELD_OVERHEAD,
    WRAPPED_KEY_BYTES,
    DataKey,
    FieldContext,
    WrappedKey,
    decrypt_field,
    encrypt_field,
    new_data_key,
    unwrap_data_key,
    wrap_data_key,
)
from casework.security.errors import DecryptionError, UnknownKeyError
from casework.security.keyring import Keyring

PLAINTEXT = b"Amina Yusuf, born 1987-03-14"


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate()


@pytest.fixture
def key() -> DataKey:
    return DataKey(new_data_key())


@pytest.fixture
def context() -> FieldContext:
    return FieldContext("people", "full_name", uuid.uuid4(), uuid.uuid4())


def _bit_flips(blob: bytes) -> list[bytes]:
    flipped = []
    for position in range(len(blob) * 8):
        mutable = bytearray(blob)
        mutable[position // 8] ^= 1 << (position % 8)
        flipped.append(bytes(mutable))
    return flipped


def test_new_data_keys_are_random_256_bit_keys() -> None:
    keys = {new_data_key() for _ in range(100)}
    assert len(keys) == 100
    assert {len(k) for k in keys} == {32}


def test_data_key_repr_shows_only_its_public_id(key: DataKey) -> None:
    assert repr(key) == f"DataKey(key_id={key.key_id.hex()!r})"
    assert key.material.hex() not in repr(key)
    with pytest.raises(ValueError, match="32 bytes"):
        DataKey(b"short")


def test_wrapped_key_round_trip_uses_the_active_kek(keyring: Keyring) -> None:
    case_id, material = uuid.uuid4(), new_data_key()
    wrapped = wrap_data_key(keyring, material, case_id)
    assert wrapped.kek_id == keyring.active_kek().kek_id
    assert len(wrapped.blob) == WRAPPED_KEY_BYTES
    assert material not in wrapped.blob
    assert unwrap_data_key(keyring, wrapped, case_id) == material
    assert unwrap_data_key(keyring, wrap_data_key(keyring, DataKey(material), case_id), case_id)
    assert "blob=<61 bytes>" in repr(wrapped)


def test_wrapped_key_swapped_between_cases_is_rejected(keyring: Keyring) -> None:
    case_a, case_b = uuid.uuid4(), uuid.uuid4()
    wrapped_a = wrap_data_key(keyring, new_data_key(), case_a)
    with pytest.raises(DecryptionError, match="another case or KEK"):
        unwrap_data_key(keyring, wrapped_a, case_b)


def test_every_bit_flip_and_truncation_of_a_wrapped_key_is_rejected(keyring: Keyring) -> None:
    case_id = uuid.uuid4()
    wrapped = wrap_data_key(keyring, new_data_key(), case_id)
    for blob in _bit_flips(wrapped.blob) + [wrapped.blob[:n] for n in range(len(wrapped.blob))]:
        with pytest.raises(DecryptionError):
            unwrap_data_key(keyring, replace(wrapped, blob=blob), case_id)


def test_wrapped_key_relabelled_with_another_kek_is_rejected(keyring: Keyring) -> None:
    case_id = uuid.uuid4()
    old = wrap_data_key(keyring, new_data_key(), case_id)
    keyring.rotate()
    assert unwrap_data_key(keyring, old, case_id)
    relabelled = replace(old, kek_id=keyring.active_kek().kek_id)
    with pytest.raises(DecryptionError):
        unwrap_data_key(keyring, relabelled, case_id)


def test_unwrap_under_a_retired_or_unknown_kek_fails(keyring: Keyring) -> None:
    case_id = uuid.uuid4()
    wrapped = wrap_data_key(keyring, new_data_key(), case_id)
    keyring.rotate()
    keyring.retire(wrapped.kek_id)
    with pytest.raises(UnknownKeyError, match="destroyed"):
        unwrap_data_key(keyring, wrapped, case_id)
    with pytest.raises(UnknownKeyError):
        unwrap_data_key(keyring, WrappedKey("abcdef01", wrapped.blob), case_id)


def test_field_format_is_version_key_id_nonce_ciphertext(
    key: DataKey, context: FieldContext
) -> None:
    blob = encrypt_field(key, PLAINTEXT, context)
    assert blob[0] == 0x01
    assert blob[1:5] == key.key_id
    assert len(blob) == len(PLAINTEXT) + FIELD_OVERHEAD == len(PLAINTEXT) + 33
    assert PLAINTEXT not in blob
    assert decrypt_field(key, blob, context) == PLAINTEXT


def test_raw_key_bytes_and_data_key_objects_are_interchangeable(context: FieldContext) -> None:
    material = new_data_key()
    blob = encrypt_field(material, PLAINTEXT, context)
    assert decrypt_field(DataKey(material), blob, context) == PLAINTEXT


@settings(max_examples=1000, deadline=None)
@given(plaintext=st.binary(max_size=256))
def test_two_encryptions_of_the_same_value_differ(plaintext: bytes) -> None:
    key = DataKey(bytes(range(32)))
    context = FieldContext("people", "notes", uuid.UUID(int=1), uuid.UUID(int=2))
    first = encrypt_field(key, plaintext, context)
    second = encrypt_field(key, plaintext, context)
    assert first != second
    assert first[5:17] != second[5:17]
    assert decrypt_field(key, first, context) == decrypt_field(key, second, context) == plaintext


def test_every_single_bit_flip_is_rejected(key: DataKey, context: FieldContext) -> None:
    blob = encrypt_field(key, PLAINTEXT, context)
    flips = _bit_flips(blob)
    assert len(flips) == len(blob) * 8
    for tampered in flips:
        with pytest.raises(DecryptionError):
            decrypt_field(key, tampered, context)


def test_every_truncation_and_an_extension_are_rejected(
    key: DataKey, context: FieldContext
) -> None:
    blob = encrypt_field(key, PLAINTEXT, context)
    for cut in [blob[:n] for n in range(len(blob))] + [blob + b"\x00"]:
        with pytest.raises(DecryptionError):
            decrypt_field(key, cut, context)


@pytest.mark.parametrize("moved_to", ["case", "table", "column", "row"])
def test_blob_moved_to_another_place_is_rejected(
    key: DataKey, context: FieldContext, moved_to: str
) -> None:
    elsewhere = {
        "case": replace(context, case_id=uuid.uuid4()),
        "table": replace(context, table="staff"),
        "column": replace(context, column="phone"),
        "row": replace(context, row_id=uuid.uuid4()),
    }[moved_to]
    blob = encrypt_field(key, PLAINTEXT, context)
    with pytest.raises(DecryptionError, match="another case, table, column or row") as caught:
        decrypt_field(key, blob, elsewhere)
    assert "Amina" not in str(caught.value)


def test_context_encoding_is_unambiguous(key: DataKey) -> None:
    case_id, row_id = uuid.uuid4(), uuid.uuid4()
    first = FieldContext("ab", "c", case_id, row_id)
    second = FieldContext("a", "bc", case_id, row_id)
    assert first.encoded != second.encoded
    with pytest.raises(DecryptionError):
        decrypt_field(key, encrypt_field(key, PLAINTEXT, first), second)


def test_wrong_key_is_rejected_even_with_a_forged_key_id(
    key: DataKey, context: FieldContext
) -> None:
    blob = encrypt_field(key, PLAINTEXT, context)
    other = DataKey(new_data_key())
    with pytest.raises(DecryptionError, match="different data key"):
        decrypt_field(other, blob, context)
    forged = blob[:1] + other.key_id + blob[5:]
    with pytest.raises(DecryptionError, match="failed authentication"):
        decrypt_field(other, forged, context)


def test_unknown_format_version_is_rejected(key: DataKey, context: FieldContext) -> None:
    blob = encrypt_field(key, PLAINTEXT, context)
    with pytest.raises(DecryptionError, match="format version"):
        decrypt_field(key, b"\x02" + blob[1:], context)


@pytest.mark.parametrize(
    ("table", "column", "case_id", "row_id"),
    [
        ("", "c", uuid.uuid4(), uuid.uuid4()),
        ("t", "", uuid.uuid4(), uuid.uuid4()),
        ("t", "c", str(uuid.uuid4()), uuid.uuid4()),
        ("t", "c", uuid.uuid4(), 7),
    ],
)
def test_field_context_parts_are_checked(
    table: str, column: str, case_id: object, row_id: object
) -> None:
    with pytest.raises(TypeError):
        FieldContext(table, column, case_id, row_id)  # type: ignore[arg-type]
