"""Envelope encryption: a random data key per case, wrapped by the active KEK.

Fields are sealed with AES-256-GCM under the case's data key; the data key is
sealed with AES-256-GCM under a KEK from the keyring. Associated data binds
each ciphertext to where it belongs, so a blob copied to another case, table,
column or row fails to decrypt instead of yielding someone else's data.

Field ciphertext, format 1 (byte offsets)::

    0       format      0x01
    1..4    key id      first 4 bytes of SHA-256("casework.data-key-id.v1" || data key)
    5..16   nonce       12 random bytes
    17..    ciphertext  same length as the plaintext, followed by the 16-byte GCM tag

Wrapped data key, format 1: ``0x01 || nonce (12) || AES-GCM(data key) (32) || tag (16)``,
61 bytes; the KEK id travels beside it (:class:`WrappedKey`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import uuid
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from casework.security.errors import DecryptionError
from casework.security.framing import length_prefixed
from casework.security.keyring import KEY_BYTES, Kek, Keyring

FIELD_FORMAT = 0x01
WRAP_FORMAT = 0x01
KEY_ID_BYTES = 4
NONCE_BYTES = 12
TAG_BYTES = 16
FIELD_HEADER_BYTES = 1 + KEY_ID_BYTES
FIELD_OVERHEAD = FIELD_HEADER_BYTES + NONCE_BYTES + TAG_BYTES
WRAPPED_KEY_BYTES = 1 + NONCE_BYTES + KEY_BYTES + TAG_BYTES

_NONCE_START = FIELD_HEADER_BYTES
_SEALED_START = FIELD_HEADER_BYTES + NONCE_BYTES

_KEY_ID_DOMAIN = b"casework.data-key-id.v1"
_FIELD_DOMAIN = b"casework.field.v1"
_WRAP_DOMAIN = b"casework.data-key.v1"


def new_data_key() -> bytes:
    """Return a fresh random 256-bit data key."""
    return secrets.token_bytes(KEY_BYTES)


class DataKey:
    """A case's data key with its AES-GCM cipher prepared once.

    Building the cipher costs about as much as one encryption, so code that
    encrypts or decrypts more than once per key should hold a DataKey rather
    than raw bytes. The key id is a public, non-secret fingerprint.
    """

    __slots__ = ("_cipher", "_material", "header", "key_id", "row_seal_key")

    def __init__(self, material: bytes) -> None:
        if not isinstance(material, bytes) or len(material) != KEY_BYTES:
            raise ValueError(f"a data key must be exactly {KEY_BYTES} bytes")
        self._material = material
        self._cipher = AESGCM(material)
        self.key_id = hashlib.sha256(_KEY_ID_DOMAIN + material).digest()[:KEY_ID_BYTES]
        self.header = bytes((FIELD_FORMAT,)) + self.key_id
        # Derived on first use by the row seals (casework.security.columns), kept as long
        # as the key itself: one derivation per case and unit of work, not one per row.
        self.row_seal_key: bytes | None = None

    def __repr__(self) -> str:
        return f"DataKey(key_id={self.key_id.hex()!r})"

    @property
    def material(self) -> bytes:
        """The raw key, needed only to wrap it."""
        return self._material


@dataclass(frozen=True)
class WrappedKey:
    """A data key sealed under the KEK ``kek_id``; safe to store in the database."""

    kek_id: str
    blob: bytes

    def __repr__(self) -> str:
        return f"WrappedKey(kek_id={self.kek_id!r}, blob=<{len(self.blob)} bytes>)"


def _kek_cipher(kek: Kek) -> AESGCM:
    """The KEK's AES-GCM cipher, built once per :class:`Kek` object and kept on it.

    A list page unwraps 50 data keys and seeding wraps thousands; building the
    cipher costs about as much as the unwrap itself. The cipher lives exactly
    as long as the Kek object (a retired KEK is a new object without material),
    so it holds nothing the keyring does not hold already.
    """
    cipher: AESGCM | None = kek.__dict__.get("_casework_cipher")
    if cipher is None:
        cipher = AESGCM(kek.key_bytes())
        object.__setattr__(kek, "_casework_cipher", cipher)
    return cipher


@functools.lru_cache(maxsize=64)
def _wrap_aad_prefix(kek_id: str) -> bytes:
    return bytes((WRAP_FORMAT,)) + length_prefixed(_WRAP_DOMAIN, kek_id.encode("utf-8"))


_UUID_FRAME = length_prefixed(bytes(16))[:4]  # the length prefix of any UUID's 16 bytes


def _wrap_aad(kek_id: str, case_id: uuid.UUID) -> bytes:
    """``0x01 || length_prefixed(domain, kek id, case id)``; the constant part is cached
    per KEK (framing is a concatenation of framed parts), which halves a re-wrap's cost."""
    return _wrap_aad_prefix(kek_id) + _UUID_FRAME + case_id.bytes


def wrap_data_key(keyring: Keyring, data_key: DataKey | bytes, case_id: uuid.UUID) -> WrappedKey:
    """Seal ``data_key`` under the active KEK, bound to ``case_id`` and the KEK id."""
    material = data_key.material if isinstance(data_key, DataKey) else data_key
    if not isinstance(material, bytes) or len(material) != KEY_BYTES:
        raise ValueError(f"a data key must be exactly {KEY_BYTES} bytes")
    kek = keyring.active_kek()
    nonce = os.urandom(NONCE_BYTES)
    sealed = _kek_cipher(kek).encrypt(nonce, material, _wrap_aad(kek.kek_id, case_id))
    return WrappedKey(kek.kek_id, bytes((WRAP_FORMAT,)) + nonce + sealed)


def unwrap_data_key(keyring: Keyring, wrapped: WrappedKey, case_id: uuid.UUID) -> bytes:
    """Return the data key sealed in ``wrapped`` for ``case_id``.

    Raises DecryptionError if the blob is malformed, altered, or belongs to
    another case; UnknownKeyError if its KEK is unknown or destroyed.
    """
    blob = bytes(wrapped.blob)
    if len(blob) != WRAPPED_KEY_BYTES:
        raise DecryptionError("wrapped data key has the wrong length")
    if blob[0] != WRAP_FORMAT:
        raise DecryptionError("wrapped data key has an unsupported format version")
    kek = keyring.kek(wrapped.kek_id)
    nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    try:
        return _kek_cipher(kek).decrypt(nonce, sealed, _wrap_aad(kek.kek_id, case_id))
    except InvalidTag:
        raise DecryptionError(
            "wrapped data key failed authentication: it was altered, "
            "or belongs to another case or KEK"
        ) from None


@dataclass(frozen=True, slots=True)
class FieldContext:
    """Where a field ciphertext belongs; all four parts are bound as associated data.

    ``encoded`` is the associated data itself: the domain label (which names
    the format version), table, column, case id and row id, length-prefixed.
    It is computed once, because a context is typically reused for many rows.
    """

    table: str
    column: str
    case_id: uuid.UUID
    row_id: uuid.UUID
    encoded: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (isinstance(self.table, str) and self.table):
            raise TypeError("FieldContext.table must be a non-empty string")
        if not (isinstance(self.column, str) and self.column):
            raise TypeError("FieldContext.column must be a non-empty string")
        if not isinstance(self.case_id, uuid.UUID) or not isinstance(self.row_id, uuid.UUID):
            raise TypeError("FieldContext.case_id and row_id must be UUIDs")
        encoded = length_prefixed(
            _FIELD_DOMAIN,
            self.table.encode("utf-8"),
            self.column.encode("utf-8"),
            self.case_id.bytes,
            self.row_id.bytes,
        )
        object.__setattr__(self, "encoded", encoded)


def field_aad_prefix(table: str, column: str) -> bytes:
    """The constant start of a field's associated data (domain, table, column).

    ``field_aad_prefix(t, c) + field_aad_ids(case_id, row_id)`` equals
    ``FieldContext(t, c, case_id, row_id).encoded``: the framing is a plain
    concatenation of framed parts, so an attribute can keep the constant part
    and a row the id part, instead of building a context for every field read.
    """
    return length_prefixed(_FIELD_DOMAIN, table.encode("utf-8"), column.encode("utf-8"))


def field_aad_ids(case_id: uuid.UUID, row_id: uuid.UUID) -> bytes:
    """The row-specific end of a field's associated data (see :func:`field_aad_prefix`):
    ``length_prefixed(case_id.bytes, row_id.bytes)``, two 16-byte parts framed alike."""
    return _UUID_FRAME + case_id.bytes + _UUID_FRAME + row_id.bytes


def encrypt_field(data_key: DataKey | bytes, plaintext: bytes, context: FieldContext) -> bytes:
    """Return ``plaintext`` sealed for ``context`` in field format 1 (a fresh nonce each call).

    The associated data is ``context.encoded``; its domain label carries the
    format version, and the header's key id is checked exactly on decryption,
    so every header bit is authenticated without hashing the header again.
    """
    key = data_key if isinstance(data_key, DataKey) else DataKey(data_key)
    return seal_with_aad(key, plaintext, context.encoded)


def seal_with_aad(key: DataKey, plaintext: bytes, aad: bytes) -> bytes:
    """:func:`encrypt_field` with the associated data already encoded (a context's ``encoded``)."""
    nonce = os.urandom(NONCE_BYTES)
    return key.header + nonce + key._cipher.encrypt(nonce, plaintext, aad)


def decrypt_field(data_key: DataKey | bytes, blob: bytes, context: FieldContext) -> bytes:
    """Return the plaintext sealed in ``blob`` for ``context``.

    Raises DecryptionError, never returns garbage, if the blob is truncated,
    altered, sealed under another key, or sealed for another context.
    """
    key = data_key if isinstance(data_key, DataKey) else DataKey(data_key)
    return open_with_aad(key, blob, context.encoded)


def open_with_aad(key: DataKey, blob: bytes, aad: bytes) -> bytes:
    """:func:`decrypt_field` with the associated data already encoded; same errors."""
    if len(blob) < FIELD_OVERHEAD:
        raise DecryptionError("ciphertext is too short to be an encrypted field")
    if not blob.startswith(key.header):
        if blob[0] != FIELD_FORMAT:
            raise DecryptionError("ciphertext has an unsupported format version")
        raise DecryptionError("ciphertext was encrypted under a different data key")
    try:
        nonce, sealed = blob[_NONCE_START:_SEALED_START], blob[_SEALED_START:]
        return key._cipher.decrypt(nonce, sealed, aad)
    except InvalidTag:
        raise DecryptionError(
            "ciphertext failed authentication: it was altered, or belongs to "
            "another case, table, column or row"
        ) from None
