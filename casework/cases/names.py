"""Name keys: one canonical string per name, the input of the name blind index.

Duplicate detection must match a person registered twice under spellings that
differ only in case, accents, punctuation, word order or romanisation
("Mohamed AL-HASSAN" and "Hassan, Muhammad al"). A blind index matches exactly,
so the tolerance has to be built into its input:

1. apostrophes and spacing accents are removed (``O'Brien`` -> ``obrien``),
   then Unicode NFKC and case folding (``ß`` -> ``ss``, full-width -> ASCII);
2. accents and other combining marks (also Arabic vowel signs) and zero-width
   characters are removed, a few letters without a decomposition are folded
   (``ø`` -> ``o``, ``ł`` -> ``l``, Arabic ``ي`` -> Persian ``ی``), digits of
   any script become ASCII, and the text is recomposed (NFC: Hangul stays whole);
3. punctuation, symbols and spaces separate tokens (hyphens, commas, dots);
4. each token found in the romanisation table (``data/romanisation.json``) is
   replaced by its group's canonical form (``yi`` -> ``lee``);
5. tokens are sorted, so name order does not matter.

Steps 1-3 follow :func:`casework.security.blind_index.normalise`, so a key fed
to the blind index comes out of its normalisation unchanged.

Known limits, accepted because a key only proposes candidates that a person
then confirms: names written in different scripts are not transliterated
(``محمد`` and ``Muhammad`` differ), and joined and split given names differ
(``Minjun`` and ``Min-jun``).
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from casework.security.blind_index import normalise as blind_index_normalise

# Apostrophe-like characters and the Catalan middle dot join the letters around
# them; NFKC would turn some of them into a space (U+00B4, U+0140), so they go
# first, together with every other spacing accent (category Sk). Listed: ' `
# modifier prime, turned comma, apostrophe, right and left half ring, left and
# right single quotation marks, prime, middle dot.
_JOINERS = str.maketrans(
    {
        **dict.fromkeys("'`\u02b9\u02bb\u02bc\u02be\u02bf\u2018\u2019\u2032\u00b7", ""),
        "\u0140": "l",  # l with middle dot
        "\u013f": "L",
    }
)
# Letters with no Unicode decomposition that people write without the mark, and
# Arabic-script letters that Arabic and Persian keyboards type differently in the
# same name. The Arabic choices match casework.security.blind_index.
_FOLDS = {
    "\u00f8": "o",  # o with stroke
    "\u0111": "d",  # d with stroke
    "\u00f0": "d",  # eth
    "\u0142": "l",  # l with stroke
    "\u0127": "h",  # h with stroke
    "\u0167": "t",  # t with stroke
    "\u0131": "i",  # dotless i
    "\u00e6": "ae",
    "\u0153": "oe",
    "\u00fe": "th",  # thorn
    "\u064a": "\u06cc",  # Arabic yeh -> Farsi yeh
    "\u0649": "\u06cc",  # alef maksura -> Farsi yeh
    "\u0643": "\u06a9",  # Arabic kaf -> keheh
    "\u0629": "\u0647",  # teh marbuta -> heh
    "\u0640": "",  # tatweel, a typographic stretch
}


class EmptyName(ValueError):
    """The name has no letter or digit left after normalisation."""

    def __init__(self) -> None:
        super().__init__("a name needs at least one letter or digit")


class RomanisationError(ValueError):
    """A romanisation table file is malformed; the message names the file and group."""


@functools.lru_cache(maxsize=4096)
def _fold(char: str) -> str:
    """What one decomposed, case-folded character becomes: itself, a fold, "" or a space."""
    category = unicodedata.category(char)
    if category[0] == "M" or category == "Cf":
        return ""  # accents, vowel signs, zero-width joiners
    if char in _FOLDS:
        return _FOLDS[char]
    digit = unicodedata.decimal(char, None)
    if digit is not None:
        return str(digit)  # any script's digits read as ASCII
    if category[0] in "PSZ" or category == "Cc":
        return " "
    return char


def _fold_ascii(char: str) -> str:
    """What one ASCII character becomes through :func:`normalise_name`'s steps (each is
    character-wise on ASCII, and the Unicode normal forms leave it as it is)."""
    joined = char.translate(_JOINERS)
    if joined and unicodedata.category(joined) == "Sk":
        return ""
    return "".join(_fold(c) for c in joined.casefold())


# ASCII names take one translate instead of the Unicode steps; the table is built
# from those steps, so both paths agree.
_ASCII_TABLE = str.maketrans({chr(code): _fold_ascii(chr(code)) for code in range(128)})


def normalise_name(text: str) -> str:
    """Steps 1-3 of the module doc: the tokens of ``text``, in order, joined by spaces.

    No romanisation is applied; an empty result means the text had no letters.
    """
    if text.isascii():
        return " ".join(text.translate(_ASCII_TABLE).split())
    joined = "".join(c for c in text.translate(_JOINERS) if unicodedata.category(c) != "Sk")
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", joined).casefold())
    folded = unicodedata.normalize("NFC", "".join(_fold(c) for c in decomposed))
    return " ".join(folded.split())


@dataclass(frozen=True, slots=True)
class RomanisationTable:
    """Variant token -> canonical tokens (one or more)."""

    canonical: Mapping[str, tuple[str, ...]]

    def apply(self, tokens: Iterable[str]) -> list[str]:
        """Replace each known variant by its canonical tokens; keep the others."""
        result: list[str] = []
        for token in tokens:
            result.extend(self.canonical.get(token, (token,)))
        return result


def _read_groups(document: Any, where: str) -> list[Mapping[str, Any]]:
    if not isinstance(document, dict) or not isinstance(document.get("metadata"), dict):
        raise RomanisationError(f"{where}: expected an object with 'metadata'")
    groups = document.get("groups")
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise RomanisationError(f"{where}: 'groups' must be a list of objects")
    return groups


def _is_normal_token(token: object) -> bool:
    return isinstance(token, str) and token != "" and normalise_name(token) == token


def _add_groups(document: Any, where: str, table: dict[str, tuple[str, ...]]) -> None:
    for group in _read_groups(document, where):
        canonical = group.get("canonical")
        variants = group.get("variants")
        if (
            not isinstance(canonical, str)
            or not canonical
            or normalise_name(canonical) != canonical
        ):
            raise RomanisationError(f"{where}: a group's canonical form is not normalised")
        if not isinstance(variants, list) or not variants:
            raise RomanisationError(f"{where} {canonical}: 'variants' must be a non-empty list")
        tokens = tuple(canonical.split())
        for variant in variants:
            if not _is_normal_token(variant) or " " in variant:
                raise RomanisationError(f"{where} {canonical}: a variant is not one normal token")
            if variant in table:
                raise RomanisationError(f"{where} {canonical}: {variant!r} is already a variant")
            table[variant] = tokens


def _check_closed(table: Mapping[str, tuple[str, ...]], where: str) -> None:
    # A canonical token that is also a variant would make keys depend on how
    # often the table is applied; refuse it so applying it once is enough.
    for tokens in table.values():
        for token in tokens:
            if token in table and table[token] != (token,):
                raise RomanisationError(f"{where}: canonical token {token!r} is another variant")


def load_romanisation(extensions: Iterable[Path] = ()) -> RomanisationTable:
    """Load the shipped table, then each extension file (same shape) in order.

    A variant may belong to one group only, across all files. Raises
    :class:`RomanisationError`. Changing the table changes name keys: the name
    blind indexes must be rebuilt afterwards.
    """
    table: dict[str, tuple[str, ...]] = {}
    shipped = resources.files("casework.cases") / "data" / "romanisation.json"
    sources: list[tuple[str, Any]] = [("romanisation.json", shipped)]
    sources += [(str(path), path) for path in extensions]
    for where, source in sources:
        try:
            document = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RomanisationError(f"{where}: not readable JSON") from exc
        _add_groups(document, where, table)
    _check_closed(table, "romanisation")
    return RomanisationTable(MappingProxyType(table))


@functools.cache
def _shipped_table() -> RomanisationTable:
    return load_romanisation()


_active_table: RomanisationTable | None = None


def use_romanisation(table: RomanisationTable | None) -> None:
    """Make ``table`` (with a field office's extensions) the one in force.

    Called once at start-up; ``None`` returns to the shipped table.
    """
    global _active_table  # one process-wide table, set at start-up
    _active_table = table


def romanisation() -> RomanisationTable:
    """The romanisation table in force (the shipped one unless replaced)."""
    return _active_table or _shipped_table()


def name_tokens(full_name: str, table: RomanisationTable | None = None) -> list[str]:
    """The canonical tokens of ``full_name`` in written order (steps 1-4).

    Raises :class:`EmptyName` when nothing is left.
    """
    tokens = (table or romanisation()).apply(normalise_name(full_name).split())
    # The blind index normalises once more; keep only what survives it, so a key
    # is always a fixed point of that normalisation (a lone modifier letter such
    # as U+02B9 is a token here but nothing there).
    tokens = [t for token in tokens for t in blind_index_normalise(token).split()]
    if not tokens:
        raise EmptyName
    return tokens


def name_key(full_name: str, table: RomanisationTable | None = None) -> str:
    """The order-free canonical key of ``full_name``: sorted tokens joined by spaces.

    Equal keys mean "possibly the same name"; feed the key to the blind index,
    never store it. Raises :class:`EmptyName`.
    """
    return " ".join(sorted(name_tokens(full_name, table)))


# --- spelling-tolerant forms: skeletons, splits and the variant keys -------------------------
#
# A blind index matches exactly, so spellings of one Korean syllable in Revised
# Romanization (RR), McCune-Reischauer without its marks (MR) and passport habits
# must reduce to one string before hashing. Rules are applied to the whole given
# name with its separators removed, so "Min-jun", "Min Jun" and "Minjun" reduce
# alike, and each rule maps a class of spellings to one member of that class, so
# the result is a fixed point (reducing it again changes nothing).
#
# Spellings that several syllables share: MR writes both 어 (RR eo) and 오 (o) as
# "o", and 으 (eu) and 우 (u) as "u"; passports write 어 as "u" in "Jung", "Sung",
# "Hyun", "Chul". A key must put every spelling of a syllable in one class, so the
# classes are unions: eo = o; eu = u = oo (and au = u, oe + u = o + eu: joined, 나은
# "Naeun" is also nae + un and "Doeun" do + eun, so "Naun" and "Doun" must meet
# them); and before a final consonant (n, ng, or a consonant that ends the name or
# precedes another consonant) eo = o = u = eu, and yeo = yo = yu (before n only
# after h or before n + g/k: "Hyun" for 현 is common, "Yun" for 연 is not, and 서연
# Seo-yeon / 서윤 Seo-yun are both frequent names; but joined, 연건 "Yeongeon" is
# also 영언, and yeong = young). The price is that
# different syllables sharing a spelling also share a key (정 jeong / 중 jung /
# 종 jong; 성 seong / 승 seung; 철 cheol / 출 chul):
# such pairs become candidates, and the score decides on the other evidence (sex,
# birth year, documents, household). The evaluation (``make eval-duplicates``)
# measures what that costs in false alerts.
#
# Known limits: written joined, a closing k/l/m/p followed by a syllable that opens
# with a vowel cannot be told from the next syllable's first letter, so "Hyeoka"
# and "Hyuka" (혁아) differ (hyphenated or spaced they match); a syllable spelled
# with a silent h ("Doh", "Ah") joined before y or a vowel reads the h as the next
# syllable's ("Dohyoung" is taken for 도형, not 도영); "Youn" is read as
# 윤, never as 연; two syllables joined o + o read as oo = u, so "Sookwoo" and
# "Seo-ok-u" (서옥우) differ; names in Hangul or Arabic script are not transliterated.

# Longest spelling first; each maps to its class's representative.
_UNITS: dict[str, str] = {
    # vowels and glides
    "yeo": "yo",
    "you": "yu",
    "yoo": "yu",
    "yae": "ye",
    "weo": "wo",
    "woo": "u",
    "wae": "we",
    "eui": "i",
    "yo": "yo",
    "yu": "yu",
    "ya": "ya",
    "ye": "ye",
    "yi": "i",
    "wa": "wa",
    "wo": "wo",
    "we": "we",
    "wi": "wi",
    "wu": "u",
    "oe": "we",
    "eo": "o",
    "eu": "u",
    "oo": "u",
    "ou": "u",
    "au": "u",  # only across syllables: 나은 "Na-un" joined = "Naeun" (nae + un)
    "ee": "i",
    "ui": "i",
    "ae": "e",
    "ai": "e",
    "a": "a",
    "e": "e",
    "i": "i",
    "o": "o",
    "u": "u",
    # consonants: plain, tense and aspirated written alike
    "tch": "j",
    "ch": "j",
    "sh": "s",
    "rh": "l",
    "ng": "ng",
    "ck": "k",
    "k": "k",
    "g": "k",
    "c": "k",
    "q": "k",
    "t": "t",
    "d": "t",
    "p": "p",
    "b": "p",
    "j": "j",
    "s": "s",
    "r": "l",
    "l": "l",
    "n": "n",
    "m": "m",
    "h": "h",
    "w": "w",
    "y": "i",
}
_VOWELS = frozenset({"a", "e", "i", "o", "u", "yo", "yu", "ya", "ye", "wa", "wo", "we", "wi"})
# Before a final consonant, these vowel classes merge further (see above).
_BEFORE_CODA = {"o": "u", "yo": "yu"}


# Units not taken before a letter: "Doeun" (도은) is o + eu, as "Doun" is o + u.
_NOT_BEFORE = {"oe": "u"}
# Alternatives longest first: at each position the regex takes the longest unit.
_UNIT_PATTERN = re.compile(
    "|".join(
        re.escape(u) + (f"(?!{_NOT_BEFORE[u]})" if u in _NOT_BEFORE else "")
        for u in sorted(_UNITS, key=len, reverse=True)
    )
    + "|.",
    re.DOTALL,
)


def _units(text: str) -> list[str]:
    """``text`` cut into spelling units, each replaced by its class (greedy, longest first);
    characters outside the table (digits, other scripts) are kept as they are."""
    return [_UNITS.get(piece, piece) for piece in _UNIT_PATTERN.findall(text)]


def _is_coda(units: list[str], index: int) -> bool:
    """Whether the consonant at ``index`` closes a syllable: n/ng always, others when
    the name ends there or another consonant follows."""
    unit = units[index]
    if unit in _VOWELS or unit == "h" or not unit.isascii() or not unit.isalpha():
        return False  # an h that closes nothing is dropped below
    if unit in ("n", "ng"):
        return True
    after = units[index + 1] if index + 1 < len(units) else None
    # before h too: "Seokho" is seok + ho (an h opens a syllable)
    return after is None or (after not in _VOWELS and after.isalpha())


@functools.lru_cache(maxsize=65536)
def skeleton(text: str) -> str:
    """The romanisation-blind form of one name part (a string of letters, no spaces).

    Spellings of one Korean syllable in RR, MR or passport style give one
    skeleton ("Jeong", "Chung", "Jung" -> ``jung``; "Hyun-woo" joined, "Hyeonu"
    -> ``hyunu``); the same rules fold common spellings of other romanised
    names (doubled letters, c/k/q, silent h). Idempotent: reduced again until
    nothing changes (a reduction can bring two units together, "ayi" -> "ai").
    """
    for _ in range(8):
        reduced = _reduce(text)
        if reduced == text:
            break
        text = reduced
    return text


def _keeps_yeon(units: list[str], index: int) -> bool:
    """Whether the "yo" at ``index`` is 연 and stays apart from 윤: before an n that
    closes the syllable, not after h. Before n + k it merges like 영 (yeong = young):
    joined, 연건 "yeongeon" and 영언 "yeongeon" are one string."""
    after = units[index + 2] if index + 2 < len(units) else None
    return units[index + 1] == "n" and (index == 0 or units[index - 1] != "h") and after != "k"


def _reduce(text: str) -> str:
    """One pass of :func:`skeleton`'s rules."""
    # ng is n + g: "Mingyu" (민규) = "Min-kyu", "Eungyeong" (은경) = "Eun-kyung". Split
    # before the coda rule, so "Yeon-geon" joined ("yeongeon") and "Yeonkon" (연건)
    # meet the same units.
    units = [part for unit in _units(text) for part in (("n", "k") if unit == "ng" else (unit,))]
    for index, unit in enumerate(units):
        if unit in _BEFORE_CODA and index + 1 < len(units) and _is_coda(units, index + 1):
            if unit == "yo" and _keeps_yeon(units, index):
                continue  # 연 yeon/yon stays apart from 윤 yun; 현 hyeon = hyun stays merged
            units[index] = _BEFORE_CODA[unit]
    kept: list[str] = []
    for index, unit in enumerate(units):
        after = units[index + 1] if index + 1 < len(units) else None
        if unit == "h" and (after is None or after not in _VOWELS):
            continue  # "Oh", "Ahn", "Suh": an h that opens no syllable is not heard
        if kept and kept[-1] == unit:
            continue  # doubled letters: "Minna" = "Mina"
        kept.append(unit)
    return "".join(kept)


# The Arabic article is written joined, hyphenated, assimilated or not at all.
_ARTICLES = frozenset({"al"})
_ARTICLE_PREFIXES = ("al", "el")


def _without_articles(tokens: list[str], table: RomanisationTable) -> list[str]:
    """``tokens`` without the article, also where it is glued on ("Alhassan" -> "hasan").

    A word of six letters or more starting with al/el loses them, whatever
    follows: applied alike to both names compared, it can only add candidates.
    """
    result: list[str] = []
    for token in tokens:
        if token in _ARTICLES:
            continue
        if token.startswith(_ARTICLE_PREFIXES) and len(token) >= 6:
            result.extend(t for t in table.apply([token[2:]]) if t not in _ARTICLES)
        else:
            result.append(token)
    return result


@dataclass(frozen=True, slots=True)
class NameForms:
    """The spelling-tolerant forms of one name, the inputs of its variant keys.

    ``tokens``: skeletons of its words, sorted (order-free);
    ``splits``: (family name, given name joined) skeleton pairs for the family
    name written first and written last (one pair for a one-word name).
    """

    tokens: tuple[str, ...]
    splits: tuple[tuple[str, str], ...]

    @property
    def joined(self) -> str:
        """All words' skeletons in the first split's order (for similarity scores)."""
        family, given = self.splits[0]
        return family + given


def name_forms(full_name: str, table: RomanisationTable | None = None) -> NameForms:
    """The :class:`NameForms` of ``full_name``; raises :class:`EmptyName`.

    Words go through the romanisation table first (family names such as
    Rhee/Yi -> lee, Arabic names such as Abdulrahman -> abd al rahman), the
    article is dropped, then each part is reduced by :func:`skeleton`.
    """
    active = table or romanisation()
    words = _without_articles(name_tokens(full_name, active), active)
    words = [w for w in words if skeleton(w)]
    if not words:
        raise EmptyName
    tokens = tuple(sorted(skeleton(w) for w in words))
    if len(words) == 1:
        return NameForms(tokens, ((skeleton(words[0]), ""),))
    first = (skeleton(words[0]), skeleton("".join(words[1:])))
    last = (skeleton(words[-1]), skeleton("".join(words[:-1])))
    splits = (first,) if first == last else (first, last)
    return NameForms(tokens, splits)
