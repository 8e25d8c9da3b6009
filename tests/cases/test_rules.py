import datetime
import uuid
from typing import Any

import pytest

from casework.cases import rules
from casework.cases.codes import Relationship, Sex
from casework.cases.rules import (
    ADULT_FIELD,
    AGE_UNKNOWN,
    CHILD_ONLY_FIELDS,
    DISAGREES_WITH_BIRTH_YEAR,
    FUTURE_YEAR,
    MOTHER_NOT_FEMALE,
    MOTHER_NOT_MEMBER,
    MOTHER_TOO_YOUNG,
    NO_PRINCIPAL,
    SECOND_PRINCIPAL,
    TOO_EARLY,
    TOO_MANY_MEMBERS,
    birth_year_error,
    birth_year_of,
    date_of_birth_error,
    is_child,
    validate_household,
    validate_member,
)

TODAY = datetime.date(2025, 6, 1)


def member(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"relationship": Relationship.CHILD, "sex": Sex.FEMALE}
    base.update(fields)
    return base


def principal(**fields: Any) -> dict[str, Any]:
    return member(
        **{"relationship": Relationship.PRINCIPAL_APPLICANT, "birth_year": 1990, **fields}
    )


def test_utc_today_is_a_date() -> None:
    today = rules.utc_today()
    assert isinstance(today, datetime.date)
    assert not isinstance(today, datetime.datetime)


@pytest.mark.parametrize(
    ("year", "error"),
    [(1899, TOO_EARLY), (1900, None), (2025, None), (2026, FUTURE_YEAR), (-5, TOO_EARLY)],
)
def test_birth_year_bounds(year: int, error: str | None) -> None:
    assert birth_year_error(year, TODAY) == error


@pytest.mark.parametrize(
    ("born", "error"),
    [
        (datetime.date(1899, 12, 31), TOO_EARLY),
        (datetime.date(1900, 1, 1), None),
        (TODAY, None),
        (TODAY + datetime.timedelta(days=1), FUTURE_YEAR),
    ],
)
def test_date_of_birth_bounds(born: datetime.date, error: str | None) -> None:
    assert date_of_birth_error(born, TODAY) == error


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"birth_year": 2010}, True),
        ({"birth_year": 2007}, True),  # turns 18 during 2025: still a child this year
        ({"birth_year": 2006}, False),
        ({"date_of_birth": datetime.date(2007, 6, 2)}, True),  # 18 tomorrow
        ({"date_of_birth": datetime.date(2007, 6, 1)}, False),  # 18 today
        ({"date_of_birth": datetime.date(2007, 6, 1), "birth_year": 2007}, False),
        ({}, None),
        ({"birth_year": None, "date_of_birth": None}, None),
    ],
)
def test_is_child(fields: dict[str, Any], expected: bool | None) -> None:
    assert is_child(member(**fields), TODAY) is expected


def test_birth_year_of_prefers_birth_year_then_date() -> None:
    assert birth_year_of({"birth_year": 2001}) == 2001
    assert birth_year_of({"date_of_birth": datetime.date(2003, 4, 5)}) == 2003
    assert birth_year_of({"birth_year": True}) is None
    assert birth_year_of({}) is None


def test_date_of_birth_must_agree_with_birth_year() -> None:
    errors = validate_member(
        member(birth_year=2010, date_of_birth=datetime.date(2011, 1, 1)), today=TODAY
    )
    assert errors == {"date_of_birth": [DISAGREES_WITH_BIRTH_YEAR]}
    agreeing = member(birth_year=2011, date_of_birth=datetime.date(2011, 1, 1))
    assert validate_member(agreeing, today=TODAY) == {}


CHILD_VALUES: dict[str, Any] = {
    "birth_registration": "not_registered",
    "nationality_status": "undetermined",
    "mother": 0,
    "registration_risk": {"exposes_parent": False, "decision": "register_now", "reason": "ok"},
}


@pytest.mark.parametrize("field", CHILD_ONLY_FIELDS)
def test_child_fields_are_refused_for_adults(field: str) -> None:
    adult = member(birth_year=1980, **{field: CHILD_VALUES[field]})
    assert validate_member(adult, today=TODAY) == {field: [ADULT_FIELD]}
    child = member(birth_year=2015, **{field: CHILD_VALUES[field]})
    assert validate_member(child, today=TODAY) == {}


def test_child_fields_need_a_known_age() -> None:
    unknown = member(**CHILD_VALUES)
    assert validate_member(unknown, today=TODAY) == {f: [AGE_UNKNOWN] for f in CHILD_ONLY_FIELDS}
    assert validate_member(unknown, today=TODAY, partial=True) == {}
    adult_change = {"birth_year": 1980, "mother": uuid.uuid4()}
    assert validate_member(adult_change, today=TODAY, partial=True) == {"mother": [ADULT_FIELD]}


def test_null_child_fields_are_not_data() -> None:
    adult = member(birth_year=1980, **dict.fromkeys(CHILD_ONLY_FIELDS))
    assert validate_member(adult, today=TODAY) == {}


def test_valid_household() -> None:
    household = [principal(), member(birth_year=2015, mother=0), member(birth_year=2018)]
    assert validate_household(household, today=TODAY) == {}


def test_household_needs_a_principal_applicant() -> None:
    errors = validate_household([member(birth_year=2015)], today=TODAY)
    assert errors == {"_schema": [NO_PRINCIPAL]}


def test_second_principal_is_flagged_where_it_is() -> None:
    errors = validate_household([principal(), member(), principal(), principal()], today=TODAY)
    assert errors == {
        2: {"relationship": [SECOND_PRINCIPAL]},
        3: {"relationship": [SECOND_PRINCIPAL]},
    }


def test_household_size_limit() -> None:
    household = [principal()] + [member() for _ in range(rules.MAX_MEMBERS)]
    assert validate_household(household, today=TODAY) == {"_schema": [TOO_MANY_MEMBERS]}
    assert validate_household(household[: rules.MAX_MEMBERS], today=TODAY) == {}


@pytest.mark.parametrize("mother", [1, 2, 7, -1, True, "0", 1.0])
def test_mother_must_be_another_member(mother: Any) -> None:
    household = [principal(), member(birth_year=2015, mother=mother)]
    assert validate_household(household, today=TODAY) == {1: {"mother": [MOTHER_NOT_MEMBER]}}


@pytest.mark.parametrize("sex", [Sex.MALE, Sex.OTHER, Sex.UNKNOWN, None])
def test_mother_must_be_female(sex: Any) -> None:
    household = [principal(sex=sex), member(birth_year=2015, mother=0)]
    assert validate_household(household, today=TODAY) == {1: {"mother": [MOTHER_NOT_FEMALE]}}


@pytest.mark.parametrize(
    ("mother_year", "child_year", "valid"),
    [
        (1990, 2015, True),
        (2000, 2010, True),  # exactly the minimal gap
        (2001, 2010, False),
        (2015, 2010, False),  # younger than the child
        (2010, 2010, False),
        (None, 2010, True),  # unknown: not checked
    ],
)
def test_mother_age_gap(mother_year: int | None, child_year: int, valid: bool) -> None:
    household = [
        principal(sex=Sex.MALE),
        member(relationship=Relationship.SPOUSE, birth_year=mother_year),
        member(birth_year=child_year, mother=1),
    ]
    errors = validate_household(household, today=TODAY)
    assert errors == ({} if valid else {2: {"mother": [MOTHER_TOO_YOUNG]}})


def test_mother_uses_date_of_birth_when_birth_year_is_missing() -> None:
    household = [
        principal(birth_year=None, date_of_birth=datetime.date(2008, 1, 1)),
        member(birth_year=2015, mother=0),
    ]
    assert validate_household(household, today=TODAY) == {1: {"mother": [MOTHER_TOO_YOUNG]}}


def test_male_and_too_young_mother_gets_both_messages() -> None:
    household = [principal(sex=Sex.MALE, birth_year=2010), member(birth_year=2015, mother=0)]
    errors = validate_household(household, today=TODAY)
    assert errors == {1: {"mother": [MOTHER_NOT_FEMALE, MOTHER_TOO_YOUNG]}}


def test_merged_household_refers_to_mothers_by_id() -> None:
    mother_id, child_id = uuid.uuid4(), uuid.uuid4()
    household = [
        principal(id=mother_id),
        member(id=child_id, birth_year=2015, mother=mother_id),
        member(id=uuid.uuid4(), birth_year=2016, mother=child_id),
        member(id=uuid.uuid4(), birth_year=2016, mother=uuid.uuid4()),
    ]
    errors = validate_household(household, today=TODAY)
    assert errors == {2: {"mother": [MOTHER_TOO_YOUNG]}, 3: {"mother": [MOTHER_NOT_MEMBER]}}


def test_mother_pointing_at_itself_by_id() -> None:
    child_id = uuid.uuid4()
    household = [principal(id=uuid.uuid4()), member(id=child_id, birth_year=2015, mother=child_id)]
    assert validate_household(household, today=TODAY) == {1: {"mother": [MOTHER_NOT_MEMBER]}}


def test_adult_with_mother_gets_one_message_for_mother() -> None:
    household = [principal(), member(birth_year=1980, mother=0)]
    assert validate_household(household, today=TODAY) == {1: {"mother": [ADULT_FIELD]}}


def test_household_rules_include_member_rules() -> None:
    household = [
        principal(date_of_birth=datetime.date(1991, 1, 1)),
        member(birth_year=1970, birth_registration="unknown"),
    ]
    assert validate_household(household, today=TODAY) == {
        0: {"date_of_birth": [DISAGREES_WITH_BIRTH_YEAR]},
        1: {"birth_registration": [ADULT_FIELD]},
    }
