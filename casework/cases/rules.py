"""Cross-field rules of a household, as pure functions over plain mappings.

The intake schema calls them on the submitted members; the service calls
:func:`validate_household` again on the household as it would be after a
PATCH (stored members merged with the changes), so the same rules hold
whichever way a case is changed. They return marshmallow-style error dicts
(field -> list of messages) and never raise; messages never repeat a value.

Who counts as a child
    With a ``date_of_birth``, the exact age on ``today`` decides (under 18).
    With only a ``birth_year``, a person born in year Y counts as a child
    until the end of year Y + 18: in that boundary year they turn 18 on an
    unknown day and may still be 17, and refusing a child's civil-status
    fields too early would lose protection data, while keeping them a few
    months too long harms no one.

The mother's age gap
    A mother must be born at least :data:`MOTHER_MIN_AGE_GAP` (10) years before
    the child. The rule exists to catch a mistyped member index or swapped
    birth years, not to judge families: child marriage and early pregnancy are
    exactly what this system documents (``CR-CP``, ``CR-TP``), so the floor is
    set below any realistic maternal age rather than at a typical one. When
    either birth year is unknown the gap is not checked.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from casework.cases.codes import Relationship, Sex

ADULT_AGE = 18
MIN_BIRTH_YEAR = 1900
MOTHER_MIN_AGE_GAP = 10
MAX_MEMBERS = 50
#: Children's civil-status fields: refused for adults and for members of unknown age.
CHILD_ONLY_FIELDS = ("birth_registration", "nationality_status", "mother", "registration_risk")

SCHEMA = "_schema"  # marshmallow's key for errors that belong to no single field

FUTURE_YEAR = "Must not be in the future."
TOO_EARLY = f"Must not be before {MIN_BIRTH_YEAR}."
DISAGREES_WITH_BIRTH_YEAR = "Does not agree with birth_year."
ADULT_FIELD = f"Only recorded for members under {ADULT_AGE}."
AGE_UNKNOWN = "Needs birth_year or date_of_birth: only recorded for children."
SECOND_PRINCIPAL = "A case has exactly one principal applicant."
NO_PRINCIPAL = "Exactly one member must be the principal applicant."
TOO_MANY_MEMBERS = f"A case has at most {MAX_MEMBERS} members."
MOTHER_NOT_MEMBER = "Must refer to another member of this case."
MOTHER_NOT_FEMALE = "The mother must be a female member."
MOTHER_TOO_YOUNG = f"The mother must be born at least {MOTHER_MIN_AGE_GAP} years before the child."

FieldErrors = dict[str, list[str]]
HouseholdErrors = dict[int | str, Any]


def utc_today() -> datetime.date:
    """Today's date in UTC: the server's notion of "now" for age rules."""
    return datetime.datetime.now(datetime.UTC).date()


def birth_year_error(year: int, today: datetime.date) -> str | None:
    """Why ``year`` is not an acceptable birth year, or ``None``."""
    if year < MIN_BIRTH_YEAR:
        return TOO_EARLY
    if year > today.year:
        return FUTURE_YEAR
    return None


def date_of_birth_error(born: datetime.date, today: datetime.date) -> str | None:
    """Why ``born`` is not an acceptable date of birth, or ``None``."""
    if born.year < MIN_BIRTH_YEAR:
        return TOO_EARLY
    if born > today:
        return FUTURE_YEAR
    return None


def birth_year_of(member: Mapping[str, Any]) -> int | None:
    """The member's birth year: ``birth_year``, else the year of ``date_of_birth``."""
    year = member.get("birth_year")
    if isinstance(year, int) and not isinstance(year, bool):
        return year
    born = member.get("date_of_birth")
    return born.year if isinstance(born, datetime.date) else None


def is_child(member: Mapping[str, Any], today: datetime.date) -> bool | None:
    """Whether the member is under 18 (see the module doc), ``None`` if unknown."""
    return is_under(member, ADULT_AGE, today)


def is_under(member: Mapping[str, Any], age: int, today: datetime.date) -> bool | None:
    """Whether the member is younger than ``age`` years, ``None`` if unknown. With only a
    birth year, a member counts as younger until the end of the year they reach ``age``."""
    born = member.get("date_of_birth")
    if isinstance(born, datetime.date):
        before_birthday = (today.month, today.day) < (born.month, born.day)
        return today.year - born.year - before_birthday < age
    year = birth_year_of(member)
    if year is None:
        return None
    return today.year - year <= age


UNNAMED_MAX_AGE = 2
"""A child younger than this may be registered before it has a name (``unnamed``)."""
NAME_REQUIRED = "Give full_name, or unnamed: true for a child under 2 who has no name yet."
UNNAMED_TOO_OLD = (
    "Only a child under 2 (by date_of_birth or birth_year) may be registered without a name."
)
UNNAMED_WITH_NAME = "An unnamed child has no full_name: send one or the other."


def unnamed_errors(member: Mapping[str, Any], today: datetime.date) -> FieldErrors:
    """A new member's name: ``full_name``, or ``unnamed: true`` for a child under 2
    (a newborn often has no name when the household registers)."""
    if member.get("unnamed") is not True:
        return {} if member.get("full_name") is not None else {"full_name": [NAME_REQUIRED]}
    if member.get("full_name") is not None:
        return {"unnamed": [UNNAMED_WITH_NAME]}
    if is_under(member, UNNAMED_MAX_AGE, today) is not True:
        return {"unnamed": [UNNAMED_TOO_OLD]}
    return {}


def _present_child_fields(member: Mapping[str, Any]) -> list[str]:
    return [name for name in CHILD_ONLY_FIELDS if member.get(name) is not None]


def validate_member(
    member: Mapping[str, Any], *, today: datetime.date, partial: bool = False
) -> FieldErrors:
    """Rules within one member: date of birth against birth year, children's fields.

    With ``partial`` (a PATCH change carrying only some fields), a rule whose
    inputs are absent is skipped: the service checks the merged member later.
    """
    errors: FieldErrors = {}
    born, year = member.get("date_of_birth"), member.get("birth_year")
    if isinstance(born, datetime.date) and isinstance(year, int) and born.year != year:
        errors["date_of_birth"] = [DISAGREES_WITH_BIRTH_YEAR]
    child_fields = _present_child_fields(member)
    if child_fields:
        child = is_child(member, today)
        message = ADULT_FIELD if child is False else AGE_UNKNOWN
        if child is False or (child is None and not partial):
            for name in child_fields:
                errors.setdefault(name, []).append(message)
    return errors


def _resolve(ref: Any, members: Sequence[Mapping[str, Any]]) -> int | None:
    """Position of the member ``ref`` names: an index (intake) or a member id (merged)."""
    if isinstance(ref, int) and not isinstance(ref, bool):
        return ref if 0 <= ref < len(members) else None
    for position, member in enumerate(members):
        if member.get("id") is not None and member.get("id") == ref:
            return position
    return None


def mother_errors(position: int, members: Sequence[Mapping[str, Any]]) -> list[str]:
    """Why member ``position``'s ``mother`` is not acceptable (empty if it is, or unset)."""
    child = members[position]
    ref = child.get("mother")
    if ref is None:
        return []
    found = _resolve(ref, members)
    if found is None or found == position:
        return [MOTHER_NOT_MEMBER]
    mother = members[found]
    problems = []
    if mother.get("sex") != Sex.FEMALE:
        problems.append(MOTHER_NOT_FEMALE)
    mother_year, child_year = birth_year_of(mother), birth_year_of(child)
    if (
        mother_year is not None
        and child_year is not None
        and mother_year > child_year - MOTHER_MIN_AGE_GAP
    ):
        problems.append(MOTHER_TOO_YOUNG)
    return problems


def validate_household(
    members: Sequence[Mapping[str, Any]], *, today: datetime.date
) -> HouseholdErrors:
    """Every rule of a whole household; errors keyed by member position.

    ``mother`` may be the position of another member (intake) or the ``id`` of
    another member (a stored household merged with a PATCH). Household-wide
    messages go under ``"_schema"``. An empty dict means the household is valid.
    """
    errors: HouseholdErrors = {}
    if len(members) > MAX_MEMBERS:
        errors[SCHEMA] = [TOO_MANY_MEMBERS]
    principals = [
        i
        for i, m in enumerate(members)
        if m.get("relationship") == Relationship.PRINCIPAL_APPLICANT
    ]
    if not principals:
        errors.setdefault(SCHEMA, []).append(NO_PRINCIPAL)
    for position, member in enumerate(members):
        found = validate_member(member, today=today)
        if position in principals[1:]:
            found.setdefault("relationship", []).append(SECOND_PRINCIPAL)
        if "mother" not in found:
            problems = mother_errors(position, members)
            if problems:
                found["mother"] = problems
        if found:
            errors[position] = found
    return errors
