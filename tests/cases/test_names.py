import json
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from casework.cases import names
from casework.cases.names import (
    EmptyName,
    RomanisationError,
    load_romanisation,
    name_key,
    name_tokens,
    normalise_name,
    romanisation,
    use_romanisation,
)


@pytest.fixture(autouse=True)
def _shipped_table() -> Iterator[None]:
    use_romanisation(None)
    yield
    use_romanisation(None)


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("  Amina   EXAMPLE ", "amina example"),
        ("José Müller-Ñúñez", "jose muller nunez"),
        ("Straße", "strasse"),
        ("\uff2a\uff4f\uff48\uff4e", "john"),  # full-width JOHN
        ("O'Brien", "obrien"),
        ("O\u2019Brien", "obrien"),
        ("O\u00b4Brien", "obrien"),
        ("Col\u00b7lell", "collell"),
        ("Pa\u0140lar\u00e8s", "pallares"),
        ("\u00d8rsted \u0141ukasz \u0130lhan", "orsted lukasz ilhan"),
        ("Smith, John Jr.", "smith john jr"),
        ("\u0645\u064f\u062d\u064e\u0645\u0651\u064e\u062f", "\u0645\u062d\u0645\u062f"),
        ("\u0641\u0627\u0637\u0645\u0629", "\u0641\u0627\u0637\u0645\u0647"),  # teh marbuta
        ("\ud55c\uad6d\uc774\ub984", "\ud55c\uad6d\uc774\ub984"),  # Hangul survives whole
        ("Nguy\u1ec5n V\u0103n An", "nguyen van an"),
        ("ANNA\tMARIA\nSMITH", "anna maria smith"),
        (
            "\u0645\u062d\u0645\u062f\u200c\u0631\u0636\u0627",
            "\u0645\u062d\u0645\u062f\u0631\u0636\u0627",
        ),
        ("\u0639\u0644\u064a", "\u0639\u0644\u06cc"),  # Arabic yeh typed as Persian
        ("\u0643\u0631\u064a\u0645", "\u06a9\u0631\u06cc\u0645"),
        ("Unit \u0661\u0662", "unit 12"),
        ("Ren\u00e9e^", "renee"),
    ],
)
def test_normalise_name(text: str, normalised: str) -> None:
    assert normalise_name(text) == normalised


def test_hangul_is_recomposed() -> None:
    key = name_key("\uae40\ubbfc\uc900")
    assert unicodedata.is_normalized("NFC", key)
    assert key == "\uae40\ubbfc\uc900"


@pytest.mark.parametrize(
    "spellings",
    [
        [
            "Lee Young-ho",
            "Yi Yeong Ho",
            "RHEE young ho",
            "Ri Yong Ho",
            "Rhie Yung-Ho",
            "I Yeong-ho",
        ],
        ["Park Ji-hoon", "Pak Ji Hoon", "Bak Ji-hoon", "Pag Ji Hoon"],
        ["Choi Min-su", "Choe Min Soo", "Chey Min-su"],
        ["Jeong Hyun-woo", "Jung Hyeon-woo", "Chung Hyon Woo", "Jong Hyun U", "Cheong Hyeon-u"],
        ["Kang Seo-yeon", "Gang Seo Yon"],
        ["Kim Eun-jeong", "Gim Eun Jung", "kim eun-chung"],
        ["Mohammed Ali", "Muhammad Ali", "Mohamed Ali", "Mohamad Ali", "ali MUHAMMED"],
        ["Abdul Rahman Hassan", "Abd al-Rahman Hasan", "Abdulrahman Hassan", "Abdel Rahman Hassan"],
        ["Hussein Abdullah", "Husain Abd Allah", "Hossein Abdallah"],
        ["Fatima al-Zahra", "Fatma El Zahra", "FATIMAH AL ZAHRA"],
        ["Youssef Ibrahim", "Yusuf Ebrahim", "Yousef Ibraheem"],
    ],
)
def test_romanisation_variants_share_a_key(spellings: list[str]) -> None:
    keys = {name_key(spelling) for spelling in spellings}
    assert len(keys) == 1, keys


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Amina Example", "Example Amina"),
        ("Mohamed AL-HASSAN", "Hassan, Muhammad al"),
        ("Kim Min-jun", "Min Jun KIM"),
        ("José María García", "garcia jose maria"),
    ],
)
def test_name_order_is_ignored(first: str, second: str) -> None:
    assert name_key(first) == name_key(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Kim Min-jun", "Park Min-jun"),
        ("Lee Young-ho", "Lee Young-hee"),
        ("Muhammad Ali", "Ahmad Ali"),
        ("Hassan Ali", "Hussein Ali"),
        ("Amina Example", "Amina Exemple"),
        ("Ali", "Ali Ali"),
        ("Maria", "Mario"),
        ("Fatima Ahmad", "Fatima Ahmad Said"),
        ("\ubc15\uc9c0\ud6c8", "\uae40\uc9c0\ud6c8"),
    ],
)
def test_distinct_names_differ(first: str, second: str) -> None:
    assert name_key(first) != name_key(second)


def test_key_is_sorted_canonical_tokens() -> None:
    assert name_tokens("Yi Young-ho") == ["lee", "yeong", "ho"]
    assert name_key("Yi Young-ho") == "ho lee yeong"
    assert name_tokens("Abdulrahman") == ["abd", "al", "rahman"]


@pytest.mark.parametrize("text", ["", "   ", "---", "'", "\u0301", "\u00b7 , ."])
def test_a_name_without_letters_is_refused(text: str) -> None:
    with pytest.raises(EmptyName):
        name_key(text)


def test_shipped_table_is_closed_and_unambiguous() -> None:
    table = romanisation().canonical
    assert table["rhee"] == ("lee",)
    assert table["mohamed"] == ("muhammad",)
    for canonical in table.values():
        for token in canonical:
            assert table.get(token, (token,)) == (token,)


def test_romanisation_file_documents_itself() -> None:
    path = Path(names.__file__).parent / "data" / "romanisation.json"
    metadata = json.loads(path.read_text(encoding="utf-8"))["metadata"]
    assert {"purpose", "format", "extension"} <= set(metadata)


def _write(tmp_path: Path, groups: Any) -> Path:
    path = tmp_path / "office.json"
    path.write_text(json.dumps({"metadata": {"office": "test"}, "groups": groups}), "utf-8")
    return path


def test_extension_adds_groups(tmp_path: Path) -> None:
    path = _write(tmp_path, [{"canonical": "nguyen", "variants": ["nguyn", "ngyuen"]}])
    table = load_romanisation([path])
    assert name_key("Ngyuen Van An", table) == name_key("Nguyen Van An")
    assert name_key("Ngyuen Van An") != name_key("Nguyen Van An")
    use_romanisation(table)
    assert name_key("Ngyuen Van An") == name_key("Nguyễn Văn An")


@pytest.mark.parametrize(
    "groups",
    [
        [{"canonical": "yi", "variants": ["rhee"]}],  # rhee already belongs to lee
        [{"canonical": "zhang", "variants": ["jang"]}],  # jang is a canonical form
        [{"canonical": "Nguyen", "variants": ["nguyn"]}],  # not normalised
        [{"canonical": "nguyen", "variants": ["Nguyn"]}],
        [{"canonical": "nguyen", "variants": ["ngu yen"]}],
        [{"canonical": "nguyen", "variants": []}],
        [{"canonical": "nguyen", "variants": "nguyn"}],
        [{"canonical": "", "variants": ["nguyn"]}],
        [{"variants": ["nguyn"]}],
        {"canonical": "nguyen"},
    ],
)
def test_malformed_extensions_are_refused(tmp_path: Path, groups: Any) -> None:
    with pytest.raises(RomanisationError):
        load_romanisation([_write(tmp_path, groups)])


def test_unreadable_extension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RomanisationError):
        load_romanisation([tmp_path / "missing.json"])


WORDS = st.lists(
    st.text(alphabet=st.characters(categories=("L", "N", "M", "P", "Zs")), min_size=1, max_size=12),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(WORDS, st.randoms(use_true_random=False))
def test_reordering_words_keeps_the_key(words: list[str], rng: Any) -> None:
    try:
        key = name_key(" ".join(words))
    except EmptyName:
        return
    shuffled = list(words)
    rng.shuffle(shuffled)
    assert name_key(" ".join(shuffled)) == key


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_key_is_stable_under_rekeying(text: str) -> None:
    try:
        key = name_key(text)
    except EmptyName:
        return
    assert key == key.strip()
    assert "  " not in key
    assert name_key(key) == key


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_keys_pass_the_blind_index_normalisation_unchanged(text: str) -> None:
    blind_index = pytest.importorskip("casework.security.blind_index")
    try:
        key = name_key(text)
    except EmptyName:
        return
    assert blind_index.normalise(key) == key


# --- spelling-tolerant forms (skeletons, splits) ----------------------------------------------

from benchmarks.duplicate_pairs import FAMILY_NAMES, GIVEN_SYLLABLES  # noqa: E402
from casework.cases.names import name_forms, skeleton  # noqa: E402

latin_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=14)


@given(latin_words)
def test_skeleton_is_idempotent(word: str) -> None:
    assert skeleton(skeleton(word)) == skeleton(word)


@given(st.lists(latin_words, min_size=1, max_size=5), st.sampled_from(["-", " ", ", ", "  "]))
def test_case_and_separators_between_words_do_not_change_the_forms(
    words: list[str], separator: str
) -> None:
    try:
        forms = name_forms(" ".join(words))
    except EmptyName:
        return
    assert name_forms(separator.join(words).upper()) == forms


@given(st.lists(latin_words, min_size=1, max_size=5), st.randoms(use_true_random=False))
def test_word_order_does_not_change_the_order_free_key(words: list[str], rng: Any) -> None:
    shuffled = list(words)
    rng.shuffle(shuffled)
    try:
        forms = name_forms(" ".join(words))
    except EmptyName:
        return
    assert name_forms(" ".join(shuffled)).tokens == forms.tokens


@given(
    st.sampled_from(sorted(FAMILY_NAMES)),
    st.lists(st.sampled_from(sorted(GIVEN_SYLLABLES)), min_size=1, max_size=3),
    st.data(),
)
def test_every_spelling_of_a_korean_name_shares_a_variant_key(
    family: str, given_syllables: list[str], data: Any
) -> None:
    """Any family-name spelling, any spelling of each syllable, any separator, family name
    first or last, comma, any case: one (family, given) split is shared.

    Known limit (casework.cases.names): written joined, a closing k/l/m/p before a
    syllable that opens with a vowel reads as the next syllable's start, so
    "Hyeoka" and "Hyuka" (혁아) differ; that case is left out here.
    """
    for index, syllable in enumerate(given_syllables[:-1]):
        following = GIVEN_SYLLABLES[given_syllables[index + 1]][0]
        assume(not (syllable in {"철", "혁", "범", "석"} and following[0] in "aeiouyw"))

    def written() -> str:
        fam = data.draw(st.sampled_from(FAMILY_NAMES[family]))
        parts = [data.draw(st.sampled_from(GIVEN_SYLLABLES[s])) for s in given_syllables]
        given_name = data.draw(st.sampled_from(["-", "", " "])).join(parts)
        shape = data.draw(st.sampled_from(["{f} {g}", "{g} {f}", "{f}, {g}", "{F} {g}"]))
        text = shape.format(f=fam, g=given_name, F=fam.upper())
        return data.draw(st.sampled_from([text, text.upper(), text.lower(), text.title()]))

    first, second = name_forms(written()), name_forms(written())
    assert set(first.splits) & set(second.splits) or first.tokens == second.tokens


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Mohammed Abdul Rahman Al-Hassan", "Muhammad Abdulrahman el-Hassan"),
        ("Mohamed Abd al-Rahman Alhassan", "AL-HASSAN, Muhammad Abdelrahman"),
        ("Youssef Ahmed", "Yusuf Ahmad"),
    ],
)
def test_arabic_spellings_share_a_key(one: str, other: str) -> None:
    a, b = name_forms(one), name_forms(other)
    assert a.tokens == b.tokens or set(a.splits) & set(b.splits)


@pytest.mark.parametrize(
    "other", ["Kang Yeonkon", "Kang Yonkon", "Kang Yon-gun", "Gang Yeongeon", "KANG, YEON GUN"]
)
def test_yeon_before_g_or_k_shares_a_key_however_ng_is_cut(other: str) -> None:
    # Joined, 연건 "Yeongeon" is also 영언: ng must read as n + g before the coda rule.
    a, b = name_forms("Kang Yeon-geon"), name_forms(other)
    assert set(a.splits) & set(b.splits)


@pytest.mark.parametrize(
    ("one", "other"),
    [("Kang A-eun", "Kang Aun"), ("Kim Naeun", "Kim Na-un"), ("Doeun Kim", "Kim Doun")],
)
def test_a_vowel_before_eun_or_un_shares_a_key_written_joined(one: str, other: str) -> None:
    # Joined, "ae"/"oe" straddle two syllables (나은 "Naeun" is also 내운).
    assert set(name_forms(one).splits) & set(name_forms(other).splits)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Kim Min-jun", "Kim Min-seo"),
        ("Lee Seo-yeon", "Lee Seo-yun"),
        ("Park Ji-ho", "Park Ji-hoo"),
    ],
)
def test_different_syllables_do_not_share_a_key(one: str, other: str) -> None:
    a, b = name_forms(one), name_forms(other)
    assert a.tokens != b.tokens
    assert not set(a.splits) & set(b.splits)


@settings(max_examples=500)
@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_names_normalise_as_the_unicode_steps_do(text: str) -> None:
    # An ideographic space (a separator) sends the same text through the Unicode steps.
    assert normalise_name(text) == normalise_name(text + "\u3000")


def test_every_ascii_character_normalises_as_the_unicode_steps_do() -> None:
    for code in range(128):
        text = f"a{chr(code)}b{chr(code)}"
        assert normalise_name(text) == normalise_name(text + "\u3000"), repr(chr(code))
