"""Exceptions of the security layer.

Messages are fixed, data-free sentences: they never contain key material,
plaintext, ciphertext or personal data, so they are safe to log. Identifiers
that help an operator (a KEK id, a file path) may appear; case ids do not.
"""

from __future__ import annotations


class SecurityError(Exception):
    """Base of every error raised by :mod:`casework.security`."""


class KeyringError(SecurityError):
    """The keyring is missing, malformed, unsafe to use, or asked for an impossible change."""


class UnknownKeyError(KeyringError):
    """A key-encryption key is not in the keyring, or its material was destroyed."""


class DecryptionError(SecurityError):
    """A ciphertext or wrapped key was rejected: tampered, truncated, or used out of context."""


class MissingDataKeyError(SecurityError):
    """A case has no data key: it was never provisioned, or it was crypto-shredded."""


class EncryptionContextError(SecurityError):
    """An encrypted attribute cannot be written or read: no keyring or no row/case id."""


class CodecError(SecurityError):
    """A value cannot be encoded for its encrypted column, or decoded bytes are not of its type."""


class BlindIndexError(SecurityError):
    """A blind index was requested for a value or field that must not be indexed."""


class DataKeyExistsError(SecurityError):
    """A data key was requested for a case that already has one."""


class RowIntegrityError(SecurityError):
    """A row's sealed fields do not match its authenticator: a field was replaced by another
    ciphertext (an older version of the same cell, say), or the row mixes two versions.

    ``table`` and ``column`` name where it was found; never a value or an id.
    """

    def __init__(self, table: str, column: str) -> None:
        super().__init__(
            f"the sealed fields of a {table} row do not match its authenticator "
            f"(read of {column}): a field was replaced or rolled back outside casework"
        )
        self.table = table
        self.column = column
