"""Case references: random, readable over a telephone, and refused when mistyped.

A reference is 10 symbols of Crockford's base32 (50 random bits) followed by
Crockford's mod-37 check symbol. It is drawn from :mod:`secrets` and never
derived from personal data, so it can travel in URLs and the access log.

Why mod 37 catches every single mistake: the 10 symbols are the digits of a
number N in base 32 and the check symbol is N mod 37. Changing one symbol by
d (0 < |d| < 32) changes N by d * 32**k; swapping two adjacent different symbols
a, b changes it by (a - b) * 31 * 32**k. 37 is prime and divides none of d,
31 or 32, so N mod 37 always changes. A wrong check symbol obviously fails,
and swapping the last data symbol with the check symbol passes only if the two
are equal (then nothing changed).

The canonical form is 11 upper-case symbols without separators (what is
stored and compared); :func:`format_reference` groups it as ``ABCDE-FGHJK-M``
for people. Parsing accepts both.
"""

from __future__ import annotations

import secrets

#: Crockford's 32 data symbols (no I, L, O, U).
DATA_SYMBOLS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: The 37 check symbols: the data symbols, then the five extra ones for 32..36.
CHECK_SYMBOLS = DATA_SYMBOLS + "*~$=U"
DATA_LENGTH = 10
REFERENCE_LENGTH = DATA_LENGTH + 1
#: Longest text worth parsing: the grouped form, with some slack for stray separators.
MAX_INPUT_LENGTH = 32
RANDOM_BITS = 5 * DATA_LENGTH

# Read-aliases from Crockford's spec: I and L are read as 1, O as 0.
_ALIASES = {"I": "1", "L": "1", "O": "0"}
_DATA_VALUES = {symbol: value for value, symbol in enumerate(DATA_SYMBOLS)}
_CHECK_VALUES = {symbol: value for value, symbol in enumerate(CHECK_SYMBOLS)}
_IGNORED = frozenset("- \t")


class InvalidReference(ValueError):
    """The text is not a valid case reference (malformed or failing its check).

    The message never contains the text itself. An API that looks cases up by
    reference should answer a malformed one as it answers a missing case.
    """

    def __init__(self) -> None:
        super().__init__("not a valid case reference")


def check_symbol(data: str) -> str:
    """The mod-37 check symbol of ``data``, a string of canonical data symbols."""
    number = 0
    for symbol in data:
        number = number * 32 + _DATA_VALUES[symbol]
    return CHECK_SYMBOLS[number % 37]


def new_reference() -> str:
    """A fresh random reference in canonical form (50 bits from :mod:`secrets`).

    References are random, so a new draw can repeat an existing one (about one
    chance in a billion with a million cases stored): the store keeps them
    unique and the caller draws again on a clash.
    """
    value = secrets.randbits(RANDOM_BITS)
    symbols = []
    for _ in range(DATA_LENGTH):
        symbols.append(DATA_SYMBOLS[value & 31])
        value >>= 5
    data = "".join(reversed(symbols))
    return data + check_symbol(data)


def normalise_reference(text: str) -> str:
    """The canonical form of ``text``, or :class:`InvalidReference`.

    Case-insensitive; hyphens and spaces are ignored; I and L read as 1, O as 0
    (Crockford's rules, so a reference read aloud or copied by hand still parses).
    Only ASCII is accepted, so no Unicode look-alike or case mapping (``ß`` ->
    ``SS``) can spell a reference.
    """
    if not isinstance(text, str) or len(text) > MAX_INPUT_LENGTH or not text.isascii():
        raise InvalidReference
    compact = [c for c in text.upper() if c not in _IGNORED]
    if len(compact) != REFERENCE_LENGTH:
        raise InvalidReference
    data = "".join(_ALIASES.get(c, c) for c in compact[:DATA_LENGTH])
    check = _ALIASES.get(compact[-1], compact[-1])
    if any(c not in _DATA_VALUES for c in data) or check not in _CHECK_VALUES:
        raise InvalidReference
    if check_symbol(data) != check:
        raise InvalidReference
    return data + check


def is_valid_reference(text: str) -> bool:
    """Whether ``text`` parses as a reference (see :func:`normalise_reference`)."""
    try:
        normalise_reference(text)
    except InvalidReference:
        return False
    return True


def format_reference(reference: str) -> str:
    """The display form ``ABCDE-FGHJK-M`` of any accepted spelling of a reference."""
    canonical = normalise_reference(reference)
    return f"{canonical[:5]}-{canonical[5:10]}-{canonical[10]}"


#: What a URL segment must look like to be taken for a reference: the symbols a
#: reference may be spelled with, at a reference's length or a little more.
#: Words such as ``search`` do not match, so ``/cases/search`` stays its own route.
URL_PATTERN = r"[0-9A-Za-z*~$=-]{11,32}"
