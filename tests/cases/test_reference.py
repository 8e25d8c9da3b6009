import re
import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casework.cases.reference import (
    CHECK_SYMBOLS,
    DATA_SYMBOLS,
    InvalidReference,
    check_symbol,
    format_reference,
    is_valid_reference,
    new_reference,
    normalise_reference,
)

CANONICAL = re.compile(r"[0-9A-HJKMNP-TV-Z]{10}[0-9A-HJKMNP-TV-Z*~$=U]")


def encode(number: int) -> str:
    """Ten base-32 data symbols of ``number``, written independently of the module."""
    return "".join(DATA_SYMBOLS[(number >> (5 * (9 - i))) & 31] for i in range(10))


def reference_of(number: int) -> str:
    data = encode(number)
    return data + CHECK_SYMBOLS[number % 37]


# A few references covering ordinary and special check symbols (*, ~, $, =, U).
SAMPLES = [
    reference_of(0),
    reference_of(32),
    reference_of(33),
    reference_of(34),
    reference_of(35),
    reference_of(36),
    reference_of(0x3_FFFF_FFFF_FFFF),
    reference_of(0x1234_5678_9ABC),
    "QT4556XDS8W",
]


def test_alphabets_are_crockfords() -> None:
    assert DATA_SYMBOLS == "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    assert CHECK_SYMBOLS == DATA_SYMBOLS + "*~$=U"


@pytest.mark.parametrize(
    ("data", "check"),
    [("0000000000", "0"), ("0000000011", "~"), ("0000000014", "U"), ("000000000Z", "Z")],
)
def test_check_symbol_is_value_mod_37(data: str, check: str) -> None:
    assert check_symbol(data) == check


@pytest.mark.parametrize("reference", SAMPLES)
def test_samples_are_valid(reference: str) -> None:
    assert normalise_reference(reference) == reference


def test_new_reference_is_canonical_and_valid() -> None:
    for _ in range(200):
        reference = new_reference()
        assert CANONICAL.fullmatch(reference)
        assert normalise_reference(reference) == reference


def test_new_references_use_every_symbol_in_every_position() -> None:
    references = [new_reference() for _ in range(3000)]
    assert len(set(references)) == len(references)
    for position in range(10):
        assert {r[position] for r in references} == set(DATA_SYMBOLS)


def test_new_reference_draws_50_bits_from_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[int] = []

    def fake_randbits(bits: int) -> int:
        drawn.append(bits)
        return 0x1234_5678_9ABC

    monkeypatch.setattr(secrets, "randbits", fake_randbits)
    assert new_reference() == reference_of(0x1234_5678_9ABC)
    assert drawn == [50]


def test_format_groups_for_display() -> None:
    assert format_reference("0123456789P") == "01234-56789-P"
    assert format_reference(reference_of(36)) == "00000-00014-U"


@pytest.mark.parametrize("reference", SAMPLES)
def test_display_and_sloppy_forms_parse_back(reference: str) -> None:
    shown = format_reference(reference)
    assert normalise_reference(shown) == reference
    assert normalise_reference(shown.lower()) == reference
    assert normalise_reference(f"  {reference[:3]} {reference[3:7]}-{reference[7:]} ") == reference


def test_crockford_aliases_read_as_digits() -> None:
    reference = reference_of(1)  # 0000000001 + check
    assert reference == "00000000011"
    assert normalise_reference("OoOoOoOoOLI") == reference
    assert normalise_reference("0000000001i") == reference
    assert normalise_reference("oooooooool1") == reference


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0000000000",  # no check symbol
        "000000000000",  # one too many
        "0000000001U",  # U is a check symbol only
        "00000*00010",  # * in the data part
        "0000000000!",
        "0000000000 0 0",
        "00000-00000-0-0",
        "0" * 1000,
        "0000000000\u0660",  # Arabic-Indic zero is not a symbol
        "000000000\u00df",  # upper-cases to 000000000SS, which is valid: ASCII only
        "\uff10" * 11,  # full-width zeros
        "0000000000\u0131",  # dotless i upper-cases to I
    ],
)
def test_malformed_text_is_refused(text: str) -> None:
    with pytest.raises(InvalidReference):
        normalise_reference(text)
    assert not is_valid_reference(text)


def test_unicode_that_upper_cases_to_a_reference_is_refused() -> None:
    assert normalise_reference("000000000ss") == "000000000SS"
    with pytest.raises(InvalidReference):
        normalise_reference("000000000\u00df")  # German sharp s upper-cases to SS


@pytest.mark.parametrize("value", [None, 12345678901, b"00000000000", ["0"]])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(InvalidReference):
        normalise_reference(value)  # type: ignore[arg-type]


def test_error_never_repeats_the_text() -> None:
    with pytest.raises(InvalidReference) as caught:
        normalise_reference("ABCDEFGHJKZ")
    assert "ABCDE" not in str(caught.value)
    assert str(caught.value) == "not a valid case reference"


def _typed(reference: str, position: int, symbol: str) -> str:
    return reference[:position] + symbol + reference[position + 1 :]


@pytest.mark.parametrize("reference", SAMPLES)
def test_every_single_substitution_is_refused(reference: str) -> None:
    typed_symbols = CHECK_SYMBOLS + "ILO" + CHECK_SYMBOLS.lower() + "ilo"
    checked = 0
    for position in range(len(reference)):
        for symbol in typed_symbols:
            mistyped = _typed(reference, position, symbol)
            aliases = {"I": "1", "L": "1", "O": "0"}
            if aliases.get(symbol.upper(), symbol.upper()) == reference[position]:
                assert normalise_reference(mistyped) == reference  # same symbol, not a mistake
                continue
            with pytest.raises(InvalidReference):
                normalise_reference(mistyped)
            checked += 1
    assert checked >= 11 * 36 * 2


@pytest.mark.parametrize("reference", SAMPLES)
def test_every_adjacent_transposition_is_refused(reference: str) -> None:
    for position in range(len(reference) - 1):
        a, b = reference[position], reference[position + 1]
        if a == b:
            continue
        swapped = reference[:position] + b + a + reference[position + 2 :]
        with pytest.raises(InvalidReference):
            normalise_reference(swapped)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=2**50 - 1))
def test_any_50_bit_value_round_trips(number: int) -> None:
    reference = reference_of(number)
    assert normalise_reference(format_reference(reference).lower()) == reference


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_random_text_is_accepted_or_refused_cleanly(text: str) -> None:
    try:
        canonical = normalise_reference(text)
    except InvalidReference:
        return
    assert CANONICAL.fullmatch(canonical)
