"""Opaque bearer tokens for staff and one-time enrolment codes for field devices.

Only a SHA-256 hash of a token or code is stored: both carry enough entropy that an
unsalted fast hash cannot be reversed, and a stolen database then holds no usable
credential.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets

TOKEN_PREFIX = "cwt_"  # noqa: S105 - a public marker, not a secret
TOKEN_BYTES = 32  # 256 bits
#: base64url without padding: 4 characters per 3 bytes, rounded up.
_TOKEN_BODY_LENGTH = math.ceil(TOKEN_BYTES * 4 / 3)
TOKEN_LENGTH = len(TOKEN_PREFIX) + _TOKEN_BODY_LENGTH
_TOKEN_SHAPE = re.compile(rf"{re.escape(TOKEN_PREFIX)}[A-Za-z0-9_-]{{{_TOKEN_BODY_LENGTH}}}")

#: Crockford's base32: no I, L, O or U, so codes read aloud or copied by hand survive.
ENROLMENT_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ENROLMENT_GROUPS = 4
ENROLMENT_GROUP_SIZE = 4
#: 16 symbols of 5 bits: 80 bits, beyond offline guessing of a stolen hash within the
#: code's lifetime, and still typable from a phone call.
ENROLMENT_CODE_BITS = ENROLMENT_GROUPS * ENROLMENT_GROUP_SIZE * 5
_ENROLMENT_SYMBOLS = ENROLMENT_GROUPS * ENROLMENT_GROUP_SIZE
#: Longest typed form still worth reading: every symbol spaced out, with slack.
_ENROLMENT_MAX_INPUT = 4 * _ENROLMENT_SYMBOLS
_ENROLMENT_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_ENROLMENT_SEPARATORS = str.maketrans("", "", " -")


class TokenFormatError(ValueError):
    """A token or enrolment code does not have the expected shape."""


def new_token() -> str:
    """Return a new bearer token: ``cwt_`` and 256 random bits in base64url.

    The prefix lets secret scanners and log filters recognise a leaked token.
    """
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def looks_like_token(value: object) -> bool:
    """Cheap shape check (prefix, length, alphabet) to refuse junk before any lookup."""
    return isinstance(value, str) and _TOKEN_SHAPE.fullmatch(value) is not None


def hash_token(token: str) -> bytes:
    """Return the 32-byte SHA-256 digest to store and look up in place of ``token``.

    Raises :class:`TokenFormatError` for anything that is not shaped like a token.
    """
    if not looks_like_token(token):
        raise TokenFormatError("not a casework token")
    return hashlib.sha256(token.encode("ascii")).digest()


def new_enrolment_code() -> str:
    """Return a one-time device enrolment code such as ``7Q2M-XK9D-0RT4-HW3B``."""
    return _grouped("".join(secrets.choice(ENROLMENT_ALPHABET) for _ in range(_ENROLMENT_SYMBOLS)))


def normalise_enrolment_code(value: str) -> str:
    """Return the canonical form (upper case, grouped) of a typed enrolment code.

    Spaces, hyphens and case are ignored, and O, I, L read as 0, 1, 1, as Crockford's
    base32 prescribes. Raises :class:`TokenFormatError` when anything else is wrong.
    """
    if len(value) > _ENROLMENT_MAX_INPUT or not value.isascii():
        raise TokenFormatError("not an enrolment code")
    symbols = value.translate(_ENROLMENT_SEPARATORS).upper().translate(_ENROLMENT_LOOKALIKES)
    if len(symbols) != _ENROLMENT_SYMBOLS or not all(s in ENROLMENT_ALPHABET for s in symbols):
        raise TokenFormatError("not an enrolment code")
    return _grouped(symbols)


def _grouped(symbols: str) -> str:
    size = ENROLMENT_GROUP_SIZE
    return "-".join(symbols[start : start + size] for start in range(0, len(symbols), size))


def hash_enrolment_code(value: str) -> bytes:
    """Return the SHA-256 digest of the canonical code, the only form to store."""
    return hashlib.sha256(normalise_enrolment_code(value).encode("ascii")).digest()
