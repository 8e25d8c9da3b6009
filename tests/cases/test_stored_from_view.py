"""A change's members' values read back from the stored view of the case's version
(``stored_from_view``, the sync push's merge view) equal the decrypted ones
(``stored_values``), every member row's seal still checked; a view of another shape
or household is not used."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from casework.cases import service
from casework.cases.models import Case, CaseMember
from casework.security.errors import RowIntegrityError
from casework.sync.models import CaseVersion
from tests.cases.conftest import household, member
from tests.cases.test_read_stored_view import _varied_households

MEMBERS = CaseMember.__table__


def _couple(**head: Any) -> dict[str, Any]:
    spouse = member(relationship="spouse", sex="male", full_name="Sami Spouse", birth_year=1988)
    return household(member(**head), spouse)


def _case_and_view(session: Session, reference: str) -> tuple[Case, list[dict[str, Any]]]:
    session.expire_all()
    case = session.scalars(select(Case).where(Case.reference == reference)).one()
    row = session.scalars(
        select(CaseVersion).where(
            CaseVersion.case_id == case.id, CaseVersion.version == case.version
        )
    ).one()
    snapshot = row.snapshot
    assert snapshot is not None
    return case, snapshot["members"]


def _as_viewed(stored: service.Stored) -> service.Stored:
    """``stored`` as a view shows it: an absent list (None) as an empty one."""
    return {
        member_id: {
            name: [] if name in ("other_names", "documents") and value is None else value
            for name, value in values.items()
        }
        for member_id, values in stored.items()
    }


def test_the_values_read_back_from_the_view_equal_the_decrypted_ones(
    keyed_session: Session, worker_a: dict[str, str], register: Any
) -> None:
    bodies = [*_varied_households(), household(member(other_names=[], documents=[]))]
    for body in bodies:
        reference = register(worker_a, body)["reference"]
        case, members = _case_and_view(keyed_session, reference)
        read_back = service.stored_from_view(case, members)
        assert read_back is not None
        decrypted = service.stored_values(case)
        assert read_back == _as_viewed(decrypted)


def test_a_read_back_mother_and_birth_date_are_typed(
    keyed_session: Session, worker_a: dict[str, str], register: Any
) -> None:
    (body, *_rest) = _varied_households()
    reference = register(worker_a, body)["reference"]
    case, members = _case_and_view(keyed_session, reference)
    read_back = service.stored_from_view(case, members)
    assert read_back is not None
    head, _spouse, child = (read_back[m.id] for m in case.members)
    assert type(head["date_of_birth"]).__name__ == "date"
    assert isinstance(child["mother"], uuid.UUID)
    assert child["mother"] == case.members[0].id


@pytest.mark.parametrize("alter", ["member-missing", "member-unknown", "field-missing", "bad-date"])
def test_a_view_of_another_household_or_shape_is_not_used(
    keyed_session: Session, worker_a: dict[str, str], register: Any, alter: str
) -> None:
    reference = register(worker_a, _couple(date_of_birth="1990-03-04"))["reference"]
    case, members = _case_and_view(keyed_session, reference)
    if alter == "member-missing":
        members = members[:1]
    elif alter == "member-unknown":
        members[1]["id"] = str(uuid.uuid4())
    elif alter == "field-missing":
        del members[0]["narrative"]
    else:
        members[0]["date_of_birth"] = "4 March 1990"
    assert service.stored_from_view(case, members) is None


def test_a_member_row_altered_in_the_database_fails_as_when_decrypting(
    keyed_session: Session, worker_a: dict[str, str], register: Any
) -> None:
    """The view stands in for the decryption, not for the seal check: a member row whose
    column was put back (its seal no longer matches) is refused, by both."""
    created = register(worker_a, _couple())
    spouse = uuid.UUID(created["members"][1]["id"])
    keyed_session.execute(
        update(MEMBERS).where(MEMBERS.c.id == spouse).values(narrative=b"put back")
    )
    case, members = _case_and_view(keyed_session, created["reference"])
    with pytest.raises(RowIntegrityError):
        service.stored_from_view(case, members)
    keyed_session.expire_all()
    with pytest.raises(RowIntegrityError):
        service.stored_values(case)
