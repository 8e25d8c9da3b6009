import hashlib
import hmac
import random
import string
import unicodedata
from collections import Counter
from typing import Literal

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from casework.security.blind_index import (
    DEFAULT_BITS,
    NEVER_INDEX_ALONE,
    BlindIndexer,
    expected_false_candidates,
    normalise,
)
from casework.security.errors import BlindIndexError
from casework.security.keyring import Keyring

ROOT = bytes(range(32))


@pytest.fixture
def indexer() -> BlindIndexer:
    return BlindIndexer(ROOT, 1, bits=63)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("  José  O'Brien-Smith ", "jose obrien smith"),
        ("JOSÉ OBRIEN SMITH", "jose obrien smith"),
        ("Jose\u0301", "jose"),
        ("Ｊｏｓé", "jose"),
        ("ﬁona", "fiona"),
        ("O\u00b4Brien", "obrien"),
        ("O\u2019Brien", "obrien"),
        ("Straße", "strasse"),
        ("Müller\tDvořák", "muller dvorak"),
        ("Y\u0131ld\u0131z I\u015eIK", "yildiz isik"),
        ("Søren Łukasz", "soren lukasz"),
        ("Nguyễn Văn A.", "nguyen van a"),
        ("(Ali), Mohammed!", "ali mohammed"),
        ("zero\u200bwidth", "zerowidth"),
        ("١٩٨٥", "1985"),
        ("كريم", "کریم"),
        ("أحمد", "احمد"),
        ("김민준", "김민준"),
        ("...", ""),
    ],
)
def test_normalise(value: str, expected: str) -> None:
    assert normalise(value) == expected


def test_unordered_tokens_ignore_name_order() -> None:
    assert normalise("Kim Min-jun", tokens_unordered=True) == normalise(
        "MIN JUN KIM", tokens_unordered=True
    )
    assert normalise("Kim Min-jun") != normalise("Min-jun Kim")


def test_token_map_rewrites_each_word_before_ordering() -> None:
    variants = {"rhee": "lee", "yi": "lee", "i": "lee"}

    def romanisation(token: str) -> str:
        return variants.get(token, token)

    spellings = ["Rhee Seo-yeon", "seo yeon YI", "Lee Seo Yeon"]
    forms = {normalise(s, token_map=romanisation, tokens_unordered=True) for s in spellings}
    assert forms == {"lee seo yeon"}
    assert normalise("a b", token_map=lambda t: "" if t == "a" else t) == "b"


letters = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=10)


@st.composite
def spelling_variants(draw: st.DrawFn) -> tuple[str, str]:
    """Return a name and the same name typed differently (case, accents, width, spacing...)."""
    tokens = draw(st.lists(letters, min_size=1, max_size=4))
    typed = []
    for token in tokens:
        chars = []
        for char in token:
            if draw(st.booleans()):
                char = char.upper()
            if draw(st.integers(0, 4)) == 0:
                char += draw(st.sampled_from(["\u0301", "\u0308", "\u0303", "\u030c"]))
            if draw(st.integers(0, 6)) == 0:
                char = "".join(chr(ord(c) + 0xFEE0) if c.isascii() else c for c in char)
            if draw(st.integers(0, 8)) == 0:
                char += draw(st.sampled_from(["'", "\u2019", "\u02bc"]))
            chars.append(char)
        word = "".join(chars)
        before = draw(st.sampled_from(["", "(", '"', "-"]))
        after = draw(st.sampled_from(["", ",", ".", ")", "!", ";"]))
        typed.append(before + word + after)
    gaps = st.sampled_from([" ", "  ", "\t", "\u00a0", " - ", "\n"])
    text = typed[0] + "".join(draw(gaps) + word for word in typed[1:])
    text = draw(gaps) + text + draw(gaps)
    forms: list[Literal["NFC", "NFD", "NFKC", "NFKD"]] = ["NFC", "NFD", "NFKC", "NFKD"]
    form = draw(st.sampled_from(forms))
    return " ".join(tokens), unicodedata.normalize(form, text)


@settings(max_examples=250, deadline=None)
@given(spelling_variants())
def test_no_false_negatives_across_spelling_variants(pair: tuple[str, str]) -> None:
    plain, typed = pair
    indexer = BlindIndexer(ROOT, 1, bits=63)
    assert normalise(typed) == plain
    assert indexer.index("family_name", typed) == indexer.index("family_name", plain)
    assert indexer.compound("name_birth_year", [typed, 1987]) == indexer.compound(
        "name_birth_year", [plain, "1987"]
    )


def test_known_answer_documents_the_construction() -> None:
    def framed(*parts: bytes) -> bytes:
        return b"".join(len(p).to_bytes(4, "big") + p for p in parts)

    info = framed(b"casework.blind-index.v1", b"family_name", (1).to_bytes(4, "big"))
    field_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(ROOT)
    digest = hmac.new(field_key, framed(b"yusuf"), hashlib.sha256).digest()
    expected = int.from_bytes(digest[:8], "big") >> (64 - 16)
    assert BlindIndexer(ROOT, 1, bits=16).index("family_name", " YUSUF ") == expected
    assert DEFAULT_BITS == 16


@pytest.mark.parametrize("bits", [1, 8, 16, 33, 63])
def test_index_values_are_below_two_to_the_bits(bits: int) -> None:
    indexer = BlindIndexer(ROOT, 1, bits=bits)
    values = [indexer.index("given_name", f"name {i}") for i in range(300)]
    assert all(0 <= value < 2**bits for value in values)
    assert max(values) >= 2 ** (bits - 1) or bits == 1


@pytest.mark.parametrize("bits", [0, 64, True, 16.0])
def test_bit_length_is_validated(bits: object) -> None:
    with pytest.raises(BlindIndexError, match="bits"):
        BlindIndexer(ROOT, 1, bits=bits)  # type: ignore[arg-type]


def test_root_key_and_version_are_validated() -> None:
    with pytest.raises(BlindIndexError, match="32 bytes"):
        BlindIndexer(b"short", 1)
    with pytest.raises(BlindIndexError, match="version"):
        BlindIndexer(ROOT, 0)
    with pytest.raises(BlindIndexError, match="integer"):
        BlindIndexer(ROOT, True)


def test_field_root_and_version_each_change_the_index(indexer: BlindIndexer) -> None:
    value = "Amina"
    base = indexer.index("given_name", value)
    assert indexer.index("given_name", value) == base
    assert indexer.index("family_name", value) != base
    assert BlindIndexer(ROOT, 2, bits=63).index("given_name", value) != base
    assert BlindIndexer(bytes(32), 1, bits=63).index("given_name", value) != base


def test_compound_parts_are_unambiguous(indexer: BlindIndexer) -> None:
    assert indexer.compound("pair", ["ab", "c"]) != indexer.compound("pair", ["a", "bc"])
    assert indexer.compound("pair", ["a b", "c"]) != indexer.compound("pair", ["a", "b c"])
    assert indexer.compound("pair", ["Yusuf", 1987]) == indexer.compound("pair", ["yusuf", "1987"])


def test_low_cardinality_fields_are_indexed_only_in_compounds(indexer: BlindIndexer) -> None:
    assert {"sex", "nationality", "birth_year", "specific_needs"} <= NEVER_INDEX_ALONE
    for field in NEVER_INDEX_ALONE:
        with pytest.raises(BlindIndexError, match="never be indexed alone"):
            indexer.index(field, "value")
    assert indexer.compound("birth_year", ["Yusuf", 1987]) >= 0
    with pytest.raises(BlindIndexError, match="at least two"):
        indexer.compound("family_name_birth_year", ["Yusuf"])


def test_values_that_normalise_to_nothing_are_refused(indexer: BlindIndexer) -> None:
    with pytest.raises(BlindIndexError, match="empty"):
        indexer.index("family_name", " .-' ")
    with pytest.raises(BlindIndexError, match="empty"):
        indexer.compound("pair", ["Yusuf", "  "])
    with pytest.raises(BlindIndexError, match="field name"):
        indexer.index("", "Yusuf")


def test_from_keyring_follows_the_current_root() -> None:
    keyring = Keyring.generate()
    first = BlindIndexer.from_keyring(keyring, bits=63)
    keyring.new_blind_index_root()
    second = BlindIndexer.from_keyring(keyring, bits=63)
    pinned = BlindIndexer.from_keyring(keyring, bits=63, version=1)
    assert (first.root_version, second.root_version, pinned.root_version) == (1, 2, 1)
    assert second.index("given_name", "Amina") != first.index("given_name", "Amina")
    assert pinned.index("given_name", "Amina") == first.index("given_name", "Amina")
    assert repr(second) == "BlindIndexer(root_version=2, bits=63)"


def test_measured_candidate_rate_matches_the_documented_expectation() -> None:
    bits, population, queries = 10, 20_000, 2_000
    rng = random.Random(20250131)
    values: set[str] = set()
    while len(values) < population + queries:
        values.add("".join(rng.choices(string.ascii_lowercase, k=12)))
    ordered = sorted(values)
    rng.shuffle(ordered)
    indexer = BlindIndexer(ROOT, 1, bits=bits)
    buckets = Counter(indexer.index("family_name", v) for v in ordered[:population])
    candidates = sum(buckets[indexer.index("family_name", v)] for v in ordered[population:])
    expected = expected_false_candidates(population, bits)
    assert expected == pytest.approx(19.53, abs=0.01)
    assert candidates / queries == pytest.approx(expected, rel=0.1)


def test_documented_figures_for_the_default_bit_length() -> None:
    figures = [expected_false_candidates(n, DEFAULT_BITS) for n in (10**4, 10**5, 10**6)]
    assert figures == pytest.approx([0.153, 1.53, 15.26], rel=0.01)


@settings(max_examples=500)
@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_text_normalises_as_the_unicode_steps_do(value: str) -> None:
    # An ideographic space (a separator) sends the same text through the Unicode steps.
    assert normalise(value) == normalise(value + "\u3000")
    assert normalise(value, tokens_unordered=True) == normalise(
        value + "\u3000", tokens_unordered=True
    )


def test_every_ascii_character_normalises_as_the_unicode_steps_do() -> None:
    for code in range(128):
        value = f"a{chr(code)}b{chr(code)}"
        assert normalise(value) == normalise(value + "\u3000"), repr(chr(code))


def test_normalised_parts_give_the_index_and_compound_values(indexer: BlindIndexer) -> None:
    assert indexer.normalised("document_number", ["p 123 456"]) == indexer.index(
        "document_number", "P 123-456"
    )
    assert indexer.normalised("name_birth_year", ["jose obrien", "1985"]) == indexer.compound(
        "name_birth_year", ["José O'Brien", 1985]
    )
    with pytest.raises(BlindIndexError):
        indexer.normalised("sex", ["female"])
