"""Packages for partner organisations outside the deployment: sealed to them, signed by us.

A hand-off to a partner leaves the deployment as one blob: the consented
fields and the metadata, encrypted to the partner's registered X25519 key and
signed with the deployment's Ed25519 key. Only the partner can read it; the
partner can tell it comes from us and that nobody changed a byte on the way.

Format 1 (byte offsets; ``H`` = 102 is the header length)::

    0..3      magic       "CWPP"
    4         version     0x01
    5         suite       0x01 = X25519, HKDF-SHA256, AES-256-GCM, Ed25519
    6..37     sender      the deployment's Ed25519 public key
    38..69    recipient   the partner's X25519 public key
    70..101   ephemeral   a fresh X25519 public key, one per package
    H..-65    ciphertext  AES-256-GCM of the padded payload, 16-byte tag last;
                          associated data = the header (bytes 0..H-1)
    -64..     signature   Ed25519 over SIGN_DOMAIN || everything before it

The AES key and nonce are HKDF-SHA256 output (44 bytes) with the X25519
shared secret as input and ``KDF_DOMAIN || header`` as info, so the key
depends on every header byte (sender, recipient, ephemeral key, version). A
fresh ephemeral key per package gives a fresh key, so the derived nonce is
never reused. The payload is ``length (4 bytes, big-endian) || UTF-8 JSON
{"fields": ..., "metadata": ...} || zero bytes`` up to a multiple of 256, so
the size of the ciphertext tells little about the size of the contents.
Metadata travels encrypted too: a case reference or a purpose is about a person.

Why not RFC 9180 HPKE: the ``cryptography`` versions the project supports
(>= 42) lack it; this construction is HPKE's base mode in spirit (ephemeral
DH, KDF over a context binding both public keys) with the signature added.
Why sign after encrypting: the partner checks the sender before decrypting
anything, and the signature covers the recipient key, so a package cannot be
re-addressed; re-signing by someone else fails because the header names the
sender and is bound into the AEAD. The signature domain contains a NUL byte,
which an access-log checkpoint note can never contain, so the deployment key
can sign both without one signature passing for the other.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from hashlib import sha256
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"CWPP"
FORMAT_VERSION = 0x01
SUITE = 0x01
KEY_BYTES = 32
HEADER_BYTES = len(MAGIC) + 2 + 3 * KEY_BYTES
TAG_BYTES = 16
SIGNATURE_BYTES = 64
NONCE_BYTES = 12
PAD_BLOCK = 256
LENGTH_BYTES = 4
MAX_PACKAGE_BYTES = 32 * 1024 * 1024
MAX_PAYLOAD_BYTES = MAX_PACKAGE_BYTES - HEADER_BYTES - TAG_BYTES - SIGNATURE_BYTES - PAD_BLOCK
MAX_DEPTH = 32
MIN_PACKAGE_BYTES = HEADER_BYTES + PAD_BLOCK + TAG_BYTES + SIGNATURE_BYTES

SIGN_DOMAIN = b"casework partner package v1\x00"
KDF_DOMAIN = b"casework partner package v1 key\x00"

_SENDER = slice(6, 6 + KEY_BYTES)
_RECIPIENT = slice(6 + KEY_BYTES, 6 + 2 * KEY_BYTES)
_EPHEMERAL = slice(6 + 2 * KEY_BYTES, HEADER_BYTES)


class PackageError(ValueError):
    """A package cannot be sealed or opened; the message says why, never what it holds."""


class InvalidPackageContent(PackageError):
    """The fields or metadata are not JSON values, or are too large."""


class InvalidPartnerKey(PackageError):
    """A partner public key is malformed or unsafe (a low-order X25519 point)."""


class MalformedPackage(PackageError):
    """Not a partner package, or one of an unsupported version or suite."""


class PackageSignatureError(PackageError):
    """Not signed by the expected sender, or altered after signing."""


class WrongRecipient(PackageError):
    """The package is sealed to another key than the one used to open it."""


class PackageDecryptionError(PackageError):
    """The signature held but decryption failed: a sender fault or a forged signature."""


# --- keys ---------------------------------------------------------------------------------


def _raw(key: X25519PublicKey | Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_partner_public_key(raw: bytes) -> X25519PublicKey:
    """A partner's X25519 public key from its 32 raw bytes, refusing unsafe points.

    A low-order point would make the shared secret all zeros, readable by
    anyone: it is refused here, at registration, and again when sealing.
    """
    if not isinstance(raw, bytes) or len(raw) != KEY_BYTES:
        raise InvalidPartnerKey(f"a partner key is {KEY_BYTES} raw bytes")
    key = X25519PublicKey.from_public_bytes(raw)
    try:
        X25519PrivateKey.generate().exchange(key)
    except ValueError:
        raise InvalidPartnerKey("the partner key is a low-order point and unsafe") from None
    return key


def key_fingerprint(key: X25519PublicKey | Ed25519PublicKey) -> str:
    """SHA-256 of the raw key in hex groups, for reading aloud when registering a partner."""
    digest = sha256(_raw(key)).hexdigest()
    return " ".join(digest[i : i + 4] for i in range(0, len(digest), 4))


# --- payload ------------------------------------------------------------------------------

_CONTENT_RULE = (
    "package {part} must be an object of JSON values: objects with string keys, arrays, "
    "strings, integers, finite numbers, booleans and null, nested at most "
    f"{MAX_DEPTH} deep"
)


def _is_json(value: Any, depth: int) -> bool:
    if depth > MAX_DEPTH:
        return False
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_is_json(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v, depth + 1) for k, v in value.items())
    return False  # tuples, sets, bytes, dates...: they would not come back as given


def _encode_payload(fields: Mapping[str, Any], metadata: Mapping[str, Any]) -> bytes:
    body = {}
    for part, value in (("fields", fields), ("metadata", metadata)):
        plain = dict(value) if isinstance(value, Mapping) else None
        if plain is None or not _is_json(plain, 0):
            raise InvalidPackageContent(_CONTENT_RULE.format(part=part))
        body[part] = plain
    try:
        text = json.dumps(
            body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        encoded = text.encode("utf-8")
    except (ValueError, UnicodeEncodeError):  # lone surrogates, integers beyond Python's limit
        raise InvalidPackageContent("package contents are not encodable as UTF-8 JSON") from None
    if len(encoded) > MAX_PAYLOAD_BYTES:
        raise InvalidPackageContent(f"package contents exceed {MAX_PAYLOAD_BYTES} bytes")
    framed = len(encoded).to_bytes(LENGTH_BYTES, "big") + encoded
    return framed + bytes(-len(framed) % PAD_BLOCK)


def _decode_payload(padded: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    length = int.from_bytes(padded[:LENGTH_BYTES], "big")
    end = LENGTH_BYTES + length
    if end > len(padded) or any(padded[end:]):
        raise MalformedPackage("package payload framing is invalid")
    try:
        body = json.loads(padded[LENGTH_BYTES:end].decode("utf-8"))
    except ValueError:
        raise MalformedPackage("package payload is not UTF-8 JSON") from None
    if not isinstance(body, dict) or set(body) != {"fields", "metadata"}:
        raise MalformedPackage("package payload must hold exactly fields and metadata")
    fields, metadata = body["fields"], body["metadata"]
    if not isinstance(fields, dict) or not isinstance(metadata, dict):
        raise MalformedPackage("package fields and metadata must be objects")
    return metadata, fields


# --- sealing and opening ------------------------------------------------------------------


def _key_and_nonce(shared: bytes, header: bytes) -> tuple[AESGCM, bytes]:
    okm = HKDF(
        hashes.SHA256(), KEY_BYTES + NONCE_BYTES, salt=None, info=KDF_DOMAIN + header
    ).derive(shared)
    return AESGCM(okm[:KEY_BYTES]), okm[KEY_BYTES:]


def seal_package(
    fields: Mapping[str, Any],
    partner_public_key: X25519PublicKey,
    signing_key: Ed25519PrivateKey,
    metadata: Mapping[str, Any],
) -> bytes:
    """Return ``fields`` and ``metadata`` encrypted to the partner and signed (format 1).

    Give only the consented fields (see ``consent.consented_fields``): all of
    ``fields`` travels. Raises :class:`InvalidPackageContent` for values that
    are not JSON and :class:`InvalidPartnerKey` for an unsafe partner key.
    """
    payload = _encode_payload(fields, metadata)
    ephemeral = X25519PrivateKey.generate()
    try:
        shared = ephemeral.exchange(partner_public_key)
    except ValueError:
        raise InvalidPartnerKey("the partner key is a low-order point and unsafe") from None
    header = (
        MAGIC
        + bytes((FORMAT_VERSION, SUITE))
        + _raw(signing_key.public_key())
        + _raw(partner_public_key)
        + _raw(ephemeral.public_key())
    )
    cipher, nonce = _key_and_nonce(shared, header)
    signed = header + cipher.encrypt(nonce, payload, header)
    return signed + signing_key.sign(SIGN_DOMAIN + signed)


def _check_frame(blob: bytes) -> None:
    if not isinstance(blob, bytes):
        raise MalformedPackage("a package is bytes")
    if not blob.startswith(MAGIC):
        raise MalformedPackage("not a casework partner package")
    if len(blob) > len(MAGIC) and blob[len(MAGIC)] != FORMAT_VERSION:
        raise MalformedPackage(f"unsupported package format version {blob[len(MAGIC)]}")
    if len(blob) < MIN_PACKAGE_BYTES or len(blob) > MAX_PACKAGE_BYTES:
        raise MalformedPackage("package has an impossible length")
    if blob[len(MAGIC) + 1] != SUITE:
        raise MalformedPackage("unsupported package cipher suite")
    if (len(blob) - HEADER_BYTES - TAG_BYTES - SIGNATURE_BYTES) % PAD_BLOCK:
        raise MalformedPackage("package has an impossible length")


def open_package(
    blob: bytes,
    partner_private_key: X25519PrivateKey,
    sender_verify_key: Ed25519PublicKey,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify, then decrypt a package; return ``(metadata, fields)``.

    The signature is checked before anything is decrypted. Raises
    :class:`MalformedPackage`, :class:`PackageSignatureError` (altered, or
    another signer), :class:`WrongRecipient` (sealed to another key) or
    :class:`PackageDecryptionError`; never returns part of a bad package.
    """
    _check_frame(blob)
    signed, signature = blob[:-SIGNATURE_BYTES], blob[-SIGNATURE_BYTES:]
    if blob[_SENDER] != _raw(sender_verify_key):
        raise PackageSignatureError("the package is not signed by the expected sender key")
    try:
        sender_verify_key.verify(signature, SIGN_DOMAIN + signed)
    except InvalidSignature:
        raise PackageSignatureError(
            "the package signature does not verify: it was altered after signing"
        ) from None
    if blob[_RECIPIENT] != _raw(partner_private_key.public_key()):
        raise WrongRecipient("the package is sealed to another recipient key")
    header = signed[:HEADER_BYTES]
    try:
        shared = partner_private_key.exchange(X25519PublicKey.from_public_bytes(blob[_EPHEMERAL]))
        cipher, nonce = _key_and_nonce(shared, header)
        payload = cipher.decrypt(nonce, signed[HEADER_BYTES:], header)
    except (ValueError, InvalidTag):
        raise PackageDecryptionError(
            "the package does not decrypt under the recipient key"
        ) from None
    return _decode_payload(payload)
