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


def normalise_name(text: str) -> str:
    """Steps 1-3 of the module doc: the tokens of ``text``, in order, joined by spaces.

    No romanisation is applied; an empty result means the text had no letters.
    """
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
