import base64
import hashlib
import string
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casework.auth.tokens import (
    ENROLMENT_ALPHABET,
    ENROLMENT_CODE_BITS,
    TOKEN_LENGTH,
    TOKEN_PREFIX,
    TokenFormatError,
    hash_enrolment_code,
    hash_token,
    looks_like_token,
    new_enrolment_code,
    new_token,
    normalise_enrolment_code,
)

URLSAFE = string.ascii_letters + string.digits + "-_"


def test_new_token_is_prefixed_urlsafe_and_carries_256_bits() -> None:
    token = new_token()
    assert token.startswith(TOKEN_PREFIX)
    assert len(token) == TOKEN_LENGTH
    body = token.removeprefix(TOKEN_PREFIX)
    assert set(body) <= set(URLSAFE)
    assert len(base64.urlsafe_b64decode(body + "=")) == 32
    assert looks_like_token(token)


def test_new_tokens_differ() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000


def test_hash_token_is_sha256_of_the_token() -> None:
    token = new_token()
    digest = hash_token(token)
    assert digest == hashlib.sha256(token.encode()).digest()
    assert len(digest) == 32
    assert hash_token(token) == digest


@settings(max_examples=100, deadline=None)
@given(body=st.text(alphabet=URLSAFE, min_size=TOKEN_LENGTH - 4, max_size=TOKEN_LENGTH - 4))
def test_any_body_of_the_right_shape_is_accepted(body: str) -> None:
    assert looks_like_token(TOKEN_PREFIX + body)


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=80))
def test_arbitrary_text_is_refused_unless_token_shaped(value: str) -> None:
    shaped = (
        value.startswith(TOKEN_PREFIX)
        and len(value) == TOKEN_LENGTH
        and set(value.removeprefix(TOKEN_PREFIX)) <= set(URLSAFE)
    )
    assert looks_like_token(value) is shaped
    if not shaped:
        with pytest.raises(TokenFormatError) as caught:
            hash_token(value)
        assert str(caught.value) == "not a casework token"  # never echoes the input


@settings(max_examples=100, deadline=None)
@given(
    position=st.integers(min_value=0, max_value=TOKEN_LENGTH - 1),
    replacement=st.characters().filter(lambda c: c not in URLSAFE),
)
def test_one_foreign_character_spoils_a_token(position: int, replacement: str) -> None:
    token = new_token()
    spoilt = token[:position] + replacement + token[position + 1 :]
    assert not looks_like_token(spoilt)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t[:-1],
        lambda t: t + "A",
        lambda t: t + "\n",
        lambda t: "CWT_" + t[4:],
        lambda t: "cwx_" + t[4:],
        lambda t: " " + t,
        lambda t: t.replace("cwt_", ""),
    ],
)
def test_near_misses_are_refused(mutate: Callable[[str], str]) -> None:
    assert not looks_like_token(mutate(new_token()))


@pytest.mark.parametrize("value", [None, 42, b"cwt_" + b"A" * 43, ["cwt_"]])
def test_non_strings_are_refused(value: object) -> None:
    assert not looks_like_token(value)


def test_enrolment_code_format_and_entropy() -> None:
    code = new_enrolment_code()
    groups = code.split("-")
    assert [len(group) for group in groups] == [4, 4, 4, 4]
    assert set("".join(groups)) <= set(ENROLMENT_ALPHABET)
    assert len(ENROLMENT_ALPHABET) == 32
    assert not set("ILOU") & set(ENROLMENT_ALPHABET)
    assert ENROLMENT_CODE_BITS >= 80


def test_enrolment_codes_differ() -> None:
    assert len({new_enrolment_code() for _ in range(1000)}) == 1000


@settings(max_examples=100, deadline=None)
@given(
    symbols=st.text(alphabet=ENROLMENT_ALPHABET, min_size=16, max_size=16),
    lower=st.booleans(),
    separator=st.sampled_from(["", " ", "-", "  "]),
)
def test_typed_codes_normalise_to_the_canonical_form(
    symbols: str, lower: bool, separator: str
) -> None:
    canonical = "-".join(symbols[i : i + 4] for i in range(0, 16, 4))
    typed = separator.join(symbols[i : i + 4] for i in range(0, 16, 4))
    if lower:
        typed = typed.lower()
    assert normalise_enrolment_code(typed) == canonical
    assert hash_enrolment_code(typed) == hash_enrolment_code(canonical)
    assert hash_enrolment_code(canonical) == hashlib.sha256(canonical.encode()).digest()


def test_lookalike_letters_read_as_digits() -> None:
    assert normalise_enrolment_code("OOOO-IIII-LLLL-oil0") == "0000-1111-1111-0110"


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "ABCD-EFGH-JKMN-PQR",  # one symbol short
        "ABCD-EFGH-JKMN-PQRST",  # one symbol too many
        "ABCD-EFGH-JKMN-PQRU",  # U is not in the alphabet
        "ABCD_EFGH_JKMN_PQRS",  # unknown separator
        "ABCD-EFGH-JKMN-PQRＳ",  # noqa: RUF001 - a fullwidth letter must not pass
        "A B C D E F G H J K M N P Q R S" + " " * 60,  # longer than any honest typing
    ],
)
def test_malformed_enrolment_codes_are_refused(typed: str) -> None:
    with pytest.raises(TokenFormatError):
        normalise_enrolment_code(typed)
    with pytest.raises(TokenFormatError):
        hash_enrolment_code(typed)
