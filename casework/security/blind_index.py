"""Blind indexes: exact-match search over encrypted values without storing plaintext.

An index value is HMAC-SHA256, under a key derived for one field from the
keyring's blind-index root, over the *normalised* value, truncated to a few
bits. Truncation is deliberate: many different values share each index value,
so the database shows which rows *might* match, never which rows do; the
server decrypts the few candidates to confirm. ``docs/encryption.md`` gives
the numbers behind :data:`DEFAULT_BITS`.

Index values are returned as non-negative ``int`` below ``2**bits``, with
``bits`` at most 63, so they fit a signed 64-bit ``BIGINT`` column in both
PostgreSQL and SQLite and compare cheaply in a b-tree.
"""

from __future__ import annotations

import hmac
import unicodedata
from collections.abc import Callable, Sequence
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from casework.security.errors import BlindIndexError
from casework.security.framing import length_prefixed
from casework.security.keyring import KEY_BYTES, Keyring

DEFAULT_BITS = 16
MAX_BITS = 63

NEVER_INDEX_ALONE = frozenset(
    {"sex", "gender", "nationality", "country_of_origin", "birth_year", "specific_needs"}
)
"""Low-cardinality or special-category fields: an index over one of them alone is a
frequency table for anyone holding the database. Use them only inside a compound."""

_FIELD_KEY_DOMAIN = b"casework.blind-index.v1"

_APOSTROPHES = frozenset("'\u2018\u2019\u02b9\u02bb\u02bc\u0060\u00b4\u2032\u0640")
"""Removed without a trace, so O'Brien = OBrien. Includes Arabic tatweel (U+0640),
a purely typographic elongation."""

_LETTER_FOLDS = {
    # Latin letters without a canonical decomposition, so accent stripping misses them.
    "ø": "o",
    "ł": "l",
    "đ": "d",
    "ð": "d",
    "ħ": "h",
    "\u0131": "i",  # Turkish dotless i
    "ŧ": "t",
    "æ": "ae",
    "œ": "oe",
    "þ": "th",
    # Arabic and Persian forms that keyboards mix up in the same names.
    "\u064a": "\u06cc",  # Arabic yeh -> Farsi yeh
    "\u0649": "\u06cc",  # alef maksura -> Farsi yeh
    "\u0643": "\u06a9",  # Arabic kaf -> keheh
    "\u0629": "\u0647",  # teh marbuta -> heh
}

TokenMap = Callable[[str], str]
"""Maps one normalised token to its canonical spelling (e.g. romanisation variants)."""


@lru_cache(maxsize=4096)
def _is_dropped_before_normalising(char: str) -> bool:
    # Spacing accents (category Sk, e.g. the acute U+00B4 typed as an apostrophe)
    # must go before NFKC, which would turn them into a space plus a combining mark.
    return char in _APOSTROPHES or unicodedata.category(char) == "Sk"


@lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    """Return what one decomposed, casefolded character becomes in a normalised value."""
    category = unicodedata.category(char)
    if category[0] == "M" or category == "Cf" or char in _APOSTROPHES:
        return ""
    if char in _LETTER_FOLDS:
        return _LETTER_FOLDS[char]
    digit = unicodedata.decimal(char, None)
    if digit is not None:
        return str(digit)
    if category[0] in "PZS" or category == "Cc":
        return " "
    return char


def _fold_ascii(char: str) -> str:
    """What one ASCII character becomes through :func:`normalise`'s steps (each is
    character-wise on ASCII, and NFKC leaves it as it is)."""
    if _is_dropped_before_normalising(char):
        return ""
    return "".join(_fold_char(c) for c in char.casefold())


# ASCII text (most names and document numbers) takes one translate instead of the
# Unicode steps; the table is built from those steps, so both paths agree.
_ASCII_TABLE = str.maketrans({chr(code): _fold_ascii(chr(code)) for code in range(128)})


def normalise(
    value: str, *, token_map: TokenMap | None = None, tokens_unordered: bool = False
) -> str:
    """Return the canonical form of ``value`` for blind indexing.

    Unicode NFKC (so full-width and ligature forms match), casefold, accents
    and other combining marks removed, apostrophes removed, every other
    punctuation, symbol or space turned into one space, decimal digits of any
    script turned into ASCII digits. ``token_map`` then rewrites each word;
    ``tokens_unordered`` sorts the words so name order does not matter.

    Stripping combining marks everywhere also merges some letters that differ
    in other scripts (Indic vowel signs, Japanese voiced kana): that adds
    candidates, it never loses a match.
    """
    if value.isascii():
        text = value.translate(_ASCII_TABLE)
    else:
        text = "".join(c for c in value if not _is_dropped_before_normalising(c))
        text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
        text = unicodedata.normalize("NFKC", "".join(_fold_char(c) for c in text))
    tokens = text.split()
    if token_map is not None:
        tokens = [mapped for token in tokens for mapped in token_map(token).split()]
    if tokens_unordered:
        tokens.sort()
    return " ".join(tokens)


def expected_false_candidates(population: int, bits: int) -> float:
    """Return how many non-matching rows a lookup is expected to return.

    Each of ``population`` rows whose value differs from the one searched for
    shares its ``bits``-bit index value with probability ``2**-bits``.
    """
    return population / 2**bits


class BlindIndexer:
    """Computes blind indexes under one root key version with a fixed bit length."""

    def __init__(self, root_key: bytes, root_version: int, *, bits: int = DEFAULT_BITS) -> None:
        if not isinstance(root_key, bytes) or len(root_key) != KEY_BYTES:
            raise BlindIndexError(f"the blind-index root key must be {KEY_BYTES} bytes")
        if isinstance(root_version, bool) or not isinstance(root_version, int):
            raise BlindIndexError("the blind-index root version must be an integer")
        if not 1 <= root_version < 2**32:
            raise BlindIndexError("the blind-index root version must be between 1 and 2**32 - 1")
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
            raise BlindIndexError(f"bits must be an integer from 1 to {MAX_BITS}")
        self._root_key = root_key
        self.root_version = root_version
        self.bits = bits
        self._field_keys: dict[str, bytes] = {}

    @classmethod
    def from_keyring(
        cls, keyring: Keyring, *, bits: int = DEFAULT_BITS, version: int | None = None
    ) -> BlindIndexer:
        """Return an indexer under the keyring's current root, or under root ``version``."""
        root = keyring.blind_index_root(version)
        return cls(root.material, root.version, bits=bits)

    def __repr__(self) -> str:
        return f"BlindIndexer(root_version={self.root_version}, bits={self.bits})"

    def _field_key(self, field: str) -> bytes:
        key = self._field_keys.get(field)
        if key is None:
            if not (isinstance(field, str) and field):
                raise BlindIndexError("a blind index needs a non-empty field name")
            info = length_prefixed(
                _FIELD_KEY_DOMAIN, field.encode("utf-8"), self.root_version.to_bytes(4, "big")
            )
            hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info)
            key = self._field_keys[field] = hkdf.derive(self._root_key)
        return key

    def _truncated_mac(self, field: str, parts: Sequence[str]) -> int:
        if not all(parts):
            raise BlindIndexError("a value is empty after normalisation and cannot be indexed")
        message = length_prefixed(*(part.encode("utf-8") for part in parts))
        digest = hmac.digest(self._field_key(field), message, "sha256")
        return int.from_bytes(digest[:8], "big") >> (64 - self.bits)

    def index(
        self,
        field: str,
        value: str,
        *,
        token_map: TokenMap | None = None,
        tokens_unordered: bool = False,
    ) -> int:
        """Return the blind index of one value of ``field``.

        Raises BlindIndexError for a field in :data:`NEVER_INDEX_ALONE` or a
        value that normalises to nothing.
        """
        if field in NEVER_INDEX_ALONE:
            raise BlindIndexError(f"{field} must never be indexed alone: use a compound index")
        normalised = normalise(value, token_map=token_map, tokens_unordered=tokens_unordered)
        return self._truncated_mac(field, [normalised])

    def normalised(self, field: str, parts: Sequence[str]) -> int:
        """:meth:`index` (one part) or :meth:`compound` (several) of parts that are already
        :func:`normalise`'s output (no token map, order kept): for a caller that indexes
        one value under several keys and normalises each value once."""
        if len(parts) == 1 and field in NEVER_INDEX_ALONE:
            raise BlindIndexError(f"{field} must never be indexed alone: use a compound index")
        return self._truncated_mac(field, parts)

    def compound(
        self,
        field: str,
        values: Sequence[str | int],
        *,
        token_map: TokenMap | None = None,
        tokens_unordered: bool = False,
    ) -> int:
        """Return one blind index over several values, e.g. family name, given name, birth year.

        Each value is normalised on its own and the results are length-prefixed,
        so ``("ab", "c")`` and ``("a", "bc")`` differ. Needs at least two values.
        """
        if len(values) < 2:
            raise BlindIndexError("a compound index needs at least two values")
        parts = [
            normalise(str(v), token_map=token_map, tokens_unordered=tokens_unordered)
            for v in values
        ]
        return self._truncated_mac(field, parts)
