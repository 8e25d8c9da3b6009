"""Partner packages: every field survives, and any change or wrong key is refused."""

from __future__ import annotations

import base64
import math
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casework.handoff.partner_package import (
    HEADER_BYTES,
    MAX_DEPTH,
    PAD_BLOCK,
    SIGN_DOMAIN,
    SIGNATURE_BYTES,
    TAG_BYTES,
    InvalidPackageContent,
    InvalidPartnerKey,
    MalformedPackage,
    PackageDecryptionError,
    PackageError,
    PackageSignatureError,
    WrongRecipient,
    key_fingerprint,
    load_partner_public_key,
    open_package,
    seal_package,
)

SIGNER = Ed25519PrivateKey.generate()
PARTNER = X25519PrivateKey.generate()
FIELDS = {"full_name": "Amina Example", "phone": "+000 1234", "specific_needs": ["SC-UC"]}
METADATA = {"case": "0123456789P", "purpose": "referral", "package": 7}


def _raw(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _seal(fields: dict[str, Any] = FIELDS, metadata: dict[str, Any] = METADATA) -> bytes:
    return seal_package(fields, PARTNER.public_key(), SIGNER, metadata)


def _open(blob: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    return open_package(blob, PARTNER, SIGNER.public_key())


SEALED = _seal()


def test_a_package_opens_to_what_was_sealed() -> None:
    assert _open(SEALED) == (METADATA, FIELDS)


def test_the_header_names_sender_recipient_and_a_fresh_ephemeral_key() -> None:
    assert SEALED[:6] == b"CWPP\x01\x01"
    assert SEALED[6:38] == _raw(SIGNER.public_key())
    assert SEALED[38:70] == _raw(PARTNER.public_key())
    again = _seal()
    assert again[70:102] != SEALED[70:102]
    assert again[HEADER_BYTES:] != SEALED[HEADER_BYTES:]
    assert (len(SEALED) - HEADER_BYTES - TAG_BYTES - SIGNATURE_BYTES) % PAD_BLOCK == 0


def test_nothing_of_the_contents_is_readable_in_the_blob() -> None:
    for secret in (b"Amina", b"SC-UC", b"0123456789P", b"referral", b"full_name"):
        assert secret not in SEALED


def test_padding_hides_small_differences_in_size() -> None:
    assert len(_seal({"a": "x"})) == len(_seal({"a": "x" * 150}))
    assert len(_seal({"a": "x" * 400})) > len(_seal({"a": "x"}))


# --- refusals -----------------------------------------------------------------------------


def test_every_single_bit_flip_is_refused() -> None:
    for position in range(len(SEALED)):
        for bit in (0x01, 0x80):
            altered = bytearray(SEALED)
            altered[position] ^= bit
            with pytest.raises(PackageError):
                _open(bytes(altered))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_change_to_any_byte_is_refused(data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(SEALED) - 1))
    mask = data.draw(st.integers(1, 255))
    altered = bytearray(SEALED)
    altered[position] ^= mask
    with pytest.raises(PackageError):
        _open(bytes(altered))


@pytest.mark.parametrize(
    ("position", "error", "message"),
    [
        (0, MalformedPackage, "not a casework partner package"),
        (4, MalformedPackage, "unsupported package format version"),
        (5, MalformedPackage, "unsupported package cipher suite"),
        (10, PackageSignatureError, "not signed by the expected sender"),
        (40, PackageSignatureError, "altered after signing"),
        (80, PackageSignatureError, "altered after signing"),
        (HEADER_BYTES + 3, PackageSignatureError, "altered after signing"),
        (-1, PackageSignatureError, "altered after signing"),
    ],
)
def test_each_part_of_the_package_is_protected(
    position: int, error: type[PackageError], message: str
) -> None:
    altered = bytearray(SEALED)
    altered[position] ^= 0x02
    with pytest.raises(error, match=message):
        _open(bytes(altered))


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"CWPP",
        SEALED[:-1],
        SEALED[: HEADER_BYTES + TAG_BYTES + SIGNATURE_BYTES],
        SEALED + b"\x00",
        SEALED + bytes(PAD_BLOCK),
    ],
)
def test_truncated_or_extended_packages_are_refused(blob: bytes) -> None:
    with pytest.raises(PackageError):
        _open(blob)


def test_a_wrong_recipient_key_is_refused() -> None:
    with pytest.raises(WrongRecipient, match="sealed to another recipient key"):
        open_package(SEALED, X25519PrivateKey.generate(), SIGNER.public_key())


def test_a_wrong_signer_is_refused() -> None:
    with pytest.raises(PackageSignatureError, match="expected sender key"):
        open_package(SEALED, PARTNER, Ed25519PrivateKey.generate().public_key())
    forged = seal_package(FIELDS, PARTNER.public_key(), Ed25519PrivateKey.generate(), METADATA)
    with pytest.raises(PackageSignatureError):
        _open(forged)


def test_a_package_re_signed_by_someone_else_does_not_decrypt() -> None:
    # An intermediary cannot claim a package it cannot read: the sender key is bound
    # into the key derivation and the associated data, so swapping it breaks both.
    mallory = Ed25519PrivateKey.generate()
    body = SEALED[:-SIGNATURE_BYTES]
    swapped = body[:6] + _raw(mallory.public_key()) + body[38:]
    resigned = swapped + mallory.sign(SIGN_DOMAIN + swapped)
    with pytest.raises(PackageDecryptionError, match="does not decrypt"):
        open_package(resigned, PARTNER, mallory.public_key())
    with pytest.raises(PackageSignatureError):
        _open(resigned)


def test_the_signature_is_domain_separated() -> None:
    body, signature = SEALED[:-SIGNATURE_BYTES], SEALED[-SIGNATURE_BYTES:]
    SIGNER.public_key().verify(signature, SIGN_DOMAIN + body)
    with pytest.raises(InvalidSignature):
        SIGNER.public_key().verify(signature, body)
    assert b"\x00" in SIGN_DOMAIN  # no signed-note (checkpoint) text contains NUL


def test_a_non_bytes_package_is_refused() -> None:
    with pytest.raises(MalformedPackage):
        _open(bytearray(SEALED))  # type: ignore[arg-type]


# --- contents -----------------------------------------------------------------------------


def _deep(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "fields",
    [
        {"when": (1, 2)},
        {"tags": {"a"}},
        {"scan": b"\x00"},
        {"score": math.nan},
        {"score": math.inf},
        {1: "numeric key"},
        {"nested": {2: "numeric key"}},
        {"deep": _deep(MAX_DEPTH)},
        {"text": "\ud800"},
        {"big": 10**5000},
    ],
)
def test_values_that_would_not_come_back_as_given_are_refused(fields: dict[Any, Any]) -> None:
    with pytest.raises(InvalidPackageContent) as caught:
        _seal(fields)
    assert "numeric key" not in str(caught.value)


def test_fields_and_metadata_must_be_objects() -> None:
    with pytest.raises(InvalidPackageContent, match="package fields"):
        seal_package(["a"], PARTNER.public_key(), SIGNER, {})  # type: ignore[arg-type]
    with pytest.raises(InvalidPackageContent, match="package metadata"):
        seal_package({}, PARTNER.public_key(), SIGNER, None)  # type: ignore[arg-type]


def test_empty_contents_are_fine() -> None:
    assert _open(_seal({}, {})) == ({}, {})


def test_nesting_up_to_the_limit_is_fine() -> None:
    fields = {"deep": _deep(MAX_DEPTH - 1)}  # the leaf sits MAX_DEPTH below the top
    assert _open(_seal(fields))[1] == fields


# --- keys ---------------------------------------------------------------------------------

LOW_ORDER_POINTS = [bytes(32), (1).to_bytes(32, "little")]


@pytest.mark.parametrize("raw", LOW_ORDER_POINTS)
def test_low_order_partner_keys_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidPartnerKey, match="low-order"):
        load_partner_public_key(raw)
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    with pytest.raises(InvalidPartnerKey):
        seal_package(FIELDS, X25519PublicKey.from_public_bytes(raw), SIGNER, METADATA)


@pytest.mark.parametrize("raw", [b"", bytes(31), bytes(33), "a" * 32])
def test_partner_keys_are_32_raw_bytes(raw: Any) -> None:
    with pytest.raises(InvalidPartnerKey, match="32 raw bytes"):
        load_partner_public_key(raw)


def test_a_registered_key_seals_packages_the_partner_opens() -> None:
    key = load_partner_public_key(_raw(PARTNER.public_key()))
    assert _open(seal_package(FIELDS, key, SIGNER, METADATA)) == (METADATA, FIELDS)


def test_fingerprints_are_read_aloud_in_groups() -> None:
    fingerprint = key_fingerprint(PARTNER.public_key())
    groups = fingerprint.split(" ")
    assert len(groups) == 16
    assert all(len(g) == 4 for g in groups)
    assert base64.b16decode(fingerprint.replace(" ", "").upper())


# --- round trip ---------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
field_dicts = st.dictionaries(st.text(min_size=1, max_size=30), json_values, max_size=8)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=field_dicts, metadata=st.dictionaries(st.text(max_size=12), json_scalars, max_size=4))
def test_round_trip_keeps_every_given_field(
    fields: dict[str, Any], metadata: dict[str, Any]
) -> None:
    opened_metadata, opened_fields = _open(_seal(fields, metadata))
    assert opened_fields == fields
    assert opened_metadata == metadata
    assert _same(opened_fields, fields)
    assert _same(opened_metadata, metadata)


def _same(got: Any, given: Any) -> bool:
    """Equal with the same types all the way down: 1 stays 1, 1.0 stays 1.0, -0.0 stays -0.0."""
    if type(got) is not type(given):
        return False
    if isinstance(given, dict):
        return got.keys() == given.keys() and all(_same(got[k], given[k]) for k in given)
    if isinstance(given, list):
        return len(got) == len(given) and all(_same(a, b) for a, b in zip(got, given, strict=True))
    if isinstance(given, float):
        return got == given and math.copysign(1, got) == math.copysign(1, given)
    return bool(got == given)
