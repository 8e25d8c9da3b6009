"""A labelled set of person pairs for evaluating duplicate detection; synthetic only.

Each pair is two registrations: the same person written another way (a
must-match class) or two different people who look alike (a must-not-match
class). Korean given names are built from Hangul syllables, each with its
spellings in Revised Romanization (first), McCune-Reischauer without marks
and common passport habits, so "the same syllable" and "a different
syllable" are decided on the Hangul, never on a spelling. Arabic names use
common English and French transliterations.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# Hangul syllable -> spellings (RR first). Common in given names.
GIVEN_SYLLABLES: dict[str, tuple[str, ...]] = {
    "민": ("min",),
    "준": ("jun", "chun", "joon"),
    "서": ("seo", "so"),
    "연": ("yeon", "yon"),  # "Youn" is read as 윤 (see casework.cases.names)
    "지": ("ji", "chi", "jee"),
    "훈": ("hun", "hoon"),
    "우": ("u", "woo", "wu"),
    "진": ("jin", "chin"),
    "수": ("su", "soo"),
    "현": ("hyeon", "hyon", "hyun"),
    "영": ("yeong", "yong", "young"),
    "은": ("eun", "un"),
    "하": ("ha",),
    "나": ("na",),
    "예": ("ye",),
    "도": ("do", "to"),
    "주": ("ju", "chu", "joo"),
    "원": ("won", "weon"),
    "재": ("jae", "chae"),
    "성": ("seong", "song", "sung"),
    "태": ("tae",),
    "희": ("hui", "hee", "heui"),
    "상": ("sang",),
    "동": ("dong", "tong"),
    "철": ("cheol", "chol", "chul"),
    "호": ("ho",),
    "경": ("gyeong", "kyong", "kyung"),
    "혜": ("hye",),
    "숙": ("suk", "sook"),
    "옥": ("ok", "ock"),
    "빈": ("bin", "pin", "been"),
    "규": ("gyu", "kyu"),
    "찬": ("chan",),
    "환": ("hwan",),
    "아": ("a",),
    "윤": ("yun", "yoon"),
    "정": ("jeong", "chong", "jung"),
    "광": ("gwang", "kwang"),
    "명": ("myeong", "myong", "myung"),
    "선": ("seon", "son", "sun"),
    "미": ("mi", "mee"),
    "혁": ("hyeok", "hyok", "hyuk"),
    "기": ("gi", "ki", "kee"),
    "건": ("geon", "kon", "gun"),
    "범": ("beom", "pom", "bum"),
    "승": ("seung", "sung"),
    "시": ("si", "shi"),
    "유": ("yu", "you", "yoo"),
    "채": ("chae",),
    "다": ("da", "ta"),
    "인": ("in",),
    "석": ("seok", "sok", "suk"),
    "용": ("yong",),
    "한": ("han",),
}
# Family names (Hangul -> spellings, the usual English one first).
FAMILY_NAMES: dict[str, tuple[str, ...]] = {
    "김": ("Kim", "Gim"),
    "이": ("Lee", "Yi", "Rhee", "I", "Ri"),
    "박": ("Park", "Pak", "Bak"),
    "최": ("Choi", "Choe"),
    "정": ("Jeong", "Chung", "Jung", "Chong"),
    "강": ("Kang", "Gang"),
    "조": ("Cho", "Jo"),
    "윤": ("Yun", "Yoon"),
    "장": ("Jang", "Chang"),
    "임": ("Lim", "Im", "Rim"),
    "한": ("Han",),
    "오": ("Oh", "O"),
    "서": ("Seo", "Suh"),
    "신": ("Shin", "Sin"),
    "권": ("Kwon", "Gwon"),
    "황": ("Hwang",),
    "안": ("Ahn", "An"),
    "송": ("Song",),
    "전": ("Jeon", "Chun", "Cheon"),
    "홍": ("Hong",),
    "고": ("Ko", "Go", "Koh"),
    "문": ("Moon", "Mun"),
    "양": ("Yang",),
    "손": ("Son", "Sohn"),
    "배": ("Bae", "Pae"),
    "백": ("Baek", "Paik"),
    "허": ("Heo", "Huh"),
    "남": ("Nam",),
    "노": ("Noh", "Roh"),
}
# Arabic names: one person's name part -> its spellings (the first is the usual one).
ARABIC_GIVEN: dict[str, tuple[str, ...]] = {
    "muhammad": ("Muhammad", "Mohammed", "Mohamed", "Mohammad", "Muhammed"),
    "ahmad": ("Ahmad", "Ahmed"),
    "abd al-rahman": ("Abdul Rahman", "Abdulrahman", "Abd al-Rahman", "Abdelrahman"),
    "abd allah": ("Abdullah", "Abdallah", "Abd Allah"),
    "yusuf": ("Yusuf", "Youssef", "Yousef"),
    "ibrahim": ("Ibrahim", "Ebrahim"),
    "hasan": ("Hasan", "Hassan"),
    "husayn": ("Hussein", "Husain", "Hussain"),
    "umar": ("Omar", "Umar"),
    "mustafa": ("Mustafa", "Mostafa", "Moustafa"),
    "khalid": ("Khalid", "Khaled"),
    "mahmud": ("Mahmoud", "Mahmud"),
    "said": ("Said", "Saeed"),
    "karim": ("Karim", "Kareem"),
    "fatima": ("Fatima", "Fatma", "Fatimah"),
    "aisha": ("Aisha", "Aicha", "Ayesha"),
    "maryam": ("Maryam", "Mariam"),
    "zaynab": ("Zainab", "Zeinab"),
    "khadija": ("Khadija", "Khadijah"),
    "nur": ("Nour", "Noor", "Nur"),
}
ARABIC_FAMILY: tuple[str, ...] = (
    "Hassan",
    "Rashid",
    "Amin",
    "Khatib",
    "Masri",
    "Najjar",
    "Sayed",
    "Hamdan",
    "Zahrani",
    "Qasimi",
    "Tamimi",
    "Shami",
)
ARABIC_ARTICLES = ("Al-{}", "al-{}", "El-{}", "Al {}", "Al{}")

MUST_MATCH = (
    "surname_romanisation",
    "given_romanisation",
    "given_separators",
    "order_comma_case",
    "birth_year_off_by_one",
    "several_at_once",
    "arabic_variants",
)
MUST_NOT_MATCH = (
    "same_surname_year_other_given",
    "siblings_share_a_syllable",
    "unrelated_same_year",
    "arabic_brothers",
)


@dataclass(frozen=True)
class Pair:
    """Two registrations and whether they are one person."""

    kind: str
    same_person: bool
    first: dict[str, Any]
    second: dict[str, Any]


@dataclass(frozen=True)
class KoreanName:
    family: str
    given: tuple[str, ...]  # Hangul syllables


def _syllables(rng: random.Random, count: int = 2, avoid: set[str] | None = None) -> list[str]:
    pool = [s for s in GIVEN_SYLLABLES if s not in (avoid or set())]
    return rng.sample(pool, count)


def _write_given(
    rng: random.Random, syllables: tuple[str, ...], *, vary: bool, separator: str | None = None
) -> str:
    parts = [rng.choice(GIVEN_SYLLABLES[s]) if vary else GIVEN_SYLLABLES[s][0] for s in syllables]
    sep = rng.choice(["-", "", " "]) if separator is None else separator
    text = sep.join(parts)
    return text.title() if sep == " " else text.capitalize()


def _write_korean(
    rng: random.Random,
    name: KoreanName,
    *,
    family_variant: bool = False,
    given_variant: bool = False,
    separator: str | None = "-",
    order: str = "family_first",
) -> str:
    spellings = FAMILY_NAMES[name.family]
    family = rng.choice(spellings) if family_variant else spellings[0]
    given = _write_given(rng, name.given, vary=given_variant, separator=separator)
    if order == "family_first":
        return f"{family} {given}"
    if order == "family_last":
        return f"{given} {family}"
    if order == "comma":
        return f"{family.upper()}, {given}"
    return f"{given} {family}".upper()  # upper case, family last


def _person(name: str, year: int, sex: str) -> dict[str, Any]:
    return {"full_name": name, "birth_year": year, "sex": sex}


def _korean(rng: random.Random) -> tuple[KoreanName, int, str]:
    name = KoreanName(rng.choice(list(FAMILY_NAMES)), tuple(_syllables(rng)))
    return name, rng.randint(1950, 2010), rng.choice(["female", "male"])


def _match_korean(rng: random.Random, kind: str) -> Pair:
    name, year, sex = _korean(rng)
    first = _person(_write_korean(rng, name), year, sex)
    second_year = year
    if kind == "surname_romanisation":
        while True:
            text = _write_korean(rng, name, family_variant=True)
            if text != first["full_name"] or len(FAMILY_NAMES[name.family]) == 1:
                break
    elif kind == "given_romanisation":
        text = _write_korean(rng, name, given_variant=True)
    elif kind == "given_separators":
        text = _write_korean(rng, name, separator=rng.choice(["", " "]))
    elif kind == "order_comma_case":
        order = rng.choice(["family_last", "comma", "upper"])
        text = _write_korean(rng, name, separator=None, order=order)
    elif kind == "birth_year_off_by_one":
        text = _write_korean(rng, name)
        second_year = year + rng.choice([-1, 1])
    else:  # several at once
        text = _write_korean(
            rng,
            name,
            family_variant=True,
            given_variant=True,
            separator=None,
            order=rng.choice(["family_first", "family_last", "comma", "upper"]),
        )
        second_year = year + rng.choice([-1, 0, 1])
    return Pair(kind, True, first, _person(text, second_year, sex))


def _arabic_name(rng: random.Random, parts: tuple[str, str, str], variant: bool) -> str:
    given, father, family = parts

    def spell(key: str) -> str:
        return rng.choice(ARABIC_GIVEN[key]) if variant else ARABIC_GIVEN[key][0]

    article = rng.choice(ARABIC_ARTICLES) if variant else ARABIC_ARTICLES[0]
    family_text = article.format(family)
    if variant and rng.random() < 0.3:
        return f"{family_text}, {spell(given)} {spell(father)}"
    return f"{spell(given)} {spell(father)} {family_text}"


def _arabic(rng: random.Random) -> tuple[tuple[str, str, str], int, str]:
    sex = rng.choice(["female", "male"])
    female = {"fatima", "aisha", "maryam", "zaynab", "khadija", "nur"}
    given_pool = [g for g in ARABIC_GIVEN if (g in female) == (sex == "female")]
    fathers = [g for g in ARABIC_GIVEN if g not in female]
    parts = (rng.choice(given_pool), rng.choice(fathers), rng.choice(ARABIC_FAMILY))
    return parts, rng.randint(1950, 2010), sex


def _not_match(rng: random.Random, kind: str) -> Pair:
    if kind == "arabic_brothers":
        parts, year, sex = _arabic(rng)
        others = [g for g in ARABIC_GIVEN if g != parts[0] and g != parts[1]]
        sibling = (rng.choice(others), parts[1], parts[2])
        return Pair(
            kind,
            False,
            _person(_arabic_name(rng, parts, False), year, sex),
            _person(_arabic_name(rng, sibling, False), year + rng.randint(0, 3), sex),
        )
    name, year, sex = _korean(rng)
    first = _person(_write_korean(rng, name), year, sex)
    if kind == "same_surname_year_other_given":
        other = KoreanName(name.family, tuple(_syllables(rng, avoid=set(name.given))))
        return Pair(kind, False, first, _person(_write_korean(rng, other), year, sex))
    if kind == "siblings_share_a_syllable":
        shared = rng.randrange(2)
        (new,) = _syllables(rng, 1, avoid=set(name.given))
        given = list(name.given)
        given[1 - shared] = new
        sibling = KoreanName(name.family, tuple(given))
        second_sex = rng.choice(["female", "male"])
        second_year = year + rng.choice([0, 1, 2, 3])
        return Pair(
            kind, False, first, _person(_write_korean(rng, sibling), second_year, second_sex)
        )
    other, _other_year, other_sex = _korean(rng)
    while other.given == name.given and other.family == name.family:
        other, _other_year, other_sex = _korean(rng)
    return Pair(kind, False, first, _person(_write_korean(rng, other), year, other_sex))


def pairs(true_per_class: int, false_per_class: int, seed: int = 21) -> Iterator[Pair]:
    """``true_per_class`` pairs of each must-match class, ``false_per_class`` of each
    must-not-match class, interleaved, reproducible from ``seed``."""
    rng = random.Random(seed)
    for index in range(max(true_per_class, false_per_class)):
        for kind in MUST_MATCH if index < true_per_class else ():
            if kind == "arabic_variants":
                parts, year, sex = _arabic(rng)
                yield Pair(
                    kind,
                    True,
                    _person(_arabic_name(rng, parts, False), year, sex),
                    _person(_arabic_name(rng, parts, True), year, sex),
                )
            else:
                yield _match_korean(rng, kind)
        for kind in MUST_NOT_MATCH if index < false_per_class else ():
            yield _not_match(rng, kind)


def household_of(person: dict[str, Any]) -> dict[str, Any]:
    """An intake body for one person registered alone (principal applicant)."""
    return {
        "members": [{"relationship": "principal_applicant", "country_of_origin": "PRK", **person}]
    }


def background(count: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """``count`` households of unrelated people from the same name pools (the office's
    other cases): they share names and years with the pairs as real people do."""
    rng = random.Random(seed)
    for index in range(count):
        if index % 4 == 3:
            parts, year, sex = _arabic(rng)
            name = _arabic_name(rng, parts, rng.random() < 0.5)
        else:
            korean, year, sex = _korean(rng)
            name = _write_korean(rng, korean, separator=None)
        yield household_of(_person(name, year, sex))
