"""Intake in two steps for a caller registering many cases in one transaction (a sync
push): :func:`plan_intake` checks and builds, writing nothing; :func:`write_intakes`
writes the planned cases together and looks each up for duplicates."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, inspect, select
from sqlalchemy.orm import Session

from benchmarks.duplicate_pairs import household_of, pairs
from casework.authz.access import Principal
from casework.cases import duplicates, indexes, service
from casework.cases.models import BlindIndexEntry, Case
from casework.errors import ValidationFailed
from casework.offices.models import Office
from casework.security.case_keys import data_key_cache
from tests.cases.conftest import member

OFFICE = "plan-01"


@pytest.fixture
def worker(make_office: Any) -> Principal:
    make_office(OFFICE, "Planned intake")
    return Principal.for_role("caseworker", user_id="plan-worker", office=OFFICE)


@contextmanager
def statements(session: Session) -> Iterator[list[str]]:
    """The SQL statements ``session``'s connection runs meanwhile (an executemany: one)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _body(name: str) -> dict[str, Any]:
    return {"members": [member(full_name=name, birth_year=1988)]}


def test_a_planned_intake_writes_nothing_and_planned_intakes_are_written_together(
    app: Flask, keyed_session: Session, worker: Principal
) -> None:
    """Planning reads (the office and the drawn references, once for the lot) and writes
    nothing; writing three planned cases is one INSERT per table, and cases written
    together find each other as duplicates, never themselves."""
    session = keyed_session
    before = session.scalar(select(func.count()).select_from(Case))
    with app.test_request_context():
        reserved = service.reserve_references(session, OFFICE, 3)
        with statements(session) as seen:
            planned = [
                service.plan_intake(session, worker, _body(name), reserved=reserved)
                for name in ("Amina Haddad", "Rami Nasser", "Amina Haddad")
            ]
        assert seen == []
        assert not session.new
        with statements(session) as seen:
            made = service.write_intakes(session, worker, planned)
    inserts = [s for s in seen if s.startswith("INSERT INTO cases ")]
    assert len(inserts) == 1
    assert len([s for s in seen if s.startswith("INSERT INTO case_blind_indexes ")]) == 1
    assert session.scalar(select(func.count()).select_from(Case)) == before + 3
    ids = {result.case.id for result in made}
    assert set(session.scalars(select(BlindIndexEntry.case_id).distinct())) >= ids
    first, other, second = (result.case.reference for result in made)
    found = {r.case.reference: [d["reference"] for d in r.possible_duplicates] for r in made}
    assert found == {first: [second], other: [], second: [first]}


def test_an_inactive_office_refuses_the_plan(
    app: Flask, keyed_session: Session, worker: Principal
) -> None:
    session = keyed_session
    session.get_one(Office, OFFICE).is_active = False
    session.flush()
    with app.test_request_context(), pytest.raises(ValidationFailed):
        service.plan_intake(session, worker, _body("Amina Haddad"))
    assert not session.new


def test_cases_written_together_find_what_each_would_find_alone(
    app: Flask, keyed_session: Session, worker: Principal, make_office: Any
) -> None:
    """The lookups of cases written together (one statement) find, for each, what its own
    lookup finds once all are written: the office's earlier cases and each other, never
    itself, nothing of another office."""
    session = keyed_session
    make_office("plan-02", "Elsewhere")
    elsewhere = Principal.for_role("caseworker", user_id="plan-other", office="plan-02")
    people = [p for pair in pairs(4, 2, seed=5) for p in (pair.first, pair.second)]
    bodies = [household_of(person) for person in people]
    with app.test_request_context():
        for body in bodies[::2]:
            service.intake(session, worker, body)
        service.intake(session, elsewhere, bodies[1])
        later = [*bodies[1::2], bodies[3]]  # the last: registered twice in one go
        reserved = service.reserve_references(session, OFFICE, len(later))
        planned = [service.plan_intake(session, worker, b, reserved=reserved) for b in later]
        made = service.write_intakes(session, worker, planned)
        alone = [
            duplicates.find_duplicates(session, worker, result.case, queue=False) for result in made
        ]
    assert [result.possible_duplicates for result in made] == alone
    assert sum(1 for found in alone if found) >= 3
    assert made[-1].case.reference in [d["reference"] for d in made[1].possible_duplicates]
    for result in made:
        assert result.case.reference not in [d["reference"] for d in result.possible_duplicates]


def test_written_cases_are_persistent_as_written_and_read_back_sealed(
    app: Flask, keyed_session: Session, worker: Principal
) -> None:
    """The rows are inserted without the unit of work: the objects join the session as
    persistent, every attribute held (reading them runs no statement), and the rows read
    back in another unit of work (seals checked, values opened) give the body's values."""
    session = keyed_session
    body = {
        "specific_needs": ["SC-UC"],
        "members": [member(full_name="Amina Haddad", birth_year=1988), member(full_name="Rami")],
    }
    with app.test_request_context():
        planned = [service.plan_intake(session, worker, body)]
        (made,) = service.write_intakes(session, worker, planned)
        case = made.case
        with statements(session) as seen:
            view = service.case_view(case)
            assert case.erased_at is None
        assert seen == []
        for obj in (case, *case.members):
            state = inspect(obj)
            assert state.persistent
            assert not state.expired_attributes
        session.flush()
        session.expire_all()
        data_key_cache(session).clear()
        again = session.get_one(Case, case.id)
        assert service.case_view(again) == view
    assert view["specific_needs"] == ["SC-UC"]
    assert [m["full_name"] for m in view["members"]] == ["Amina Haddad", "Rami"]


def _varied(seed: int, count: int) -> list[dict[str, Any]]:
    """Households of one to three people from the labelled pairs (both registrations of
    a pair, far apart), some with a passport, other names or a child shared between
    households, so lookups meet matches, near misses and households scored together."""
    people = [p for pair in pairs(3, 2, seed=seed) for p in (pair.first, pair.second)]
    bodies = []
    for index in range(count):
        person = dict(people[(index * 7) % len(people)])
        body = household_of(person)
        extra = body["members"]
        if index % 3 == 0:
            person["documents"] = [{"type": "passport", "number": f"P-{index % 5:04d}"}]
        if index % 4 == 1:
            person["other_names"] = [people[(index * 3 + 1) % len(people)]["full_name"]]
        if index % 2 == 0:
            extra.append(
                member(relationship="child", full_name=f"Layla Haddad {'X' * (index % 3)}",
                       birth_year=2012 + index % 2, sex="female")
            )  # fmt: skip
        if index % 5 == 2:
            extra.append(member(relationship="spouse", **people[(index + 3) % len(people)]))
        bodies.append(body)
    return bodies


@pytest.mark.parametrize("chunked", [False, True])
def test_one_lookup_for_many_gives_each_what_its_own_lookup_gives(
    app: Flask,
    keyed_session: Session,
    worker: Principal,
    make_office: Any,
    monkeypatch: pytest.MonkeyPatch,
    chunked: bool,
) -> None:
    """The creates of one request are looked up together (one statement, or one per
    ``MAX_BOUND_VALUES`` values): for each, the same candidates in the same order, and the
    same possible duplicates with the same scores in the same order, as its own lookup
    (``exclude_case`` its case) once all are written, on varied households."""
    session = keyed_session
    if chunked:
        monkeypatch.setattr(indexes, "MAX_BOUND_VALUES", 40)
    make_office("plan-02", "Elsewhere")
    elsewhere = Principal.for_role("caseworker", user_id="plan-other", office="plan-02")
    earlier, later = _varied(11, 24), _varied(11, 30)[6:]
    with app.test_request_context():
        for index, body in enumerate(earlier):
            service.intake(session, elsewhere if index % 6 == 5 else worker, body)
        reserved = service.reserve_references(session, OFFICE, len(later))
        planned = [service.plan_intake(session, worker, b, reserved=reserved) for b in later]
        with statements(session) as seen:
            made = service.write_intakes(session, worker, planned)
        keyring = indexes.keyring_of(session)
        lookups = [(duplicates.lookup_of(plan.new.people)[1], plan.new.case.id) for plan in planned]
        together = indexes.candidates_each(session, keyring, lookups, office=OFFICE)
        ids = [plan.new.case.id for plan in planned]
        entries = [
            (e.member_id, e.case_id, e.name, e.root_version, e.value)
            for e in session.scalars(
                select(BlindIndexEntry).where(BlindIndexEntry.case_id.in_(ids))
            )
        ]
        told = indexes.candidates_each(
            session, keyring, lookups, office=OFFICE, written=entries
        )  # their own entries left out of the statement, the peers asked for by id
        alone = [
            indexes.candidates(session, keyring, probes, office=OFFICE, exclude_case=case_id)
            for probes, case_id in lookups
        ]
        found_alone = [
            duplicates.find_duplicates(
                session, worker, plan.new.case, people=plan.new.people, queue=False
            )
            for plan in planned
        ]
    lookups_run = [s for s in seen if "WITH hits" in s]
    assert len(lookups_run) > 2 if chunked else len(lookups_run) == 1
    assert all(" NOT IN " in statement for statement in lookups_run)
    assert together == alone
    assert told == alone
    assert [result.possible_duplicates for result in made] == found_alone
    assert sum(1 for found in alone if found) >= len(later) // 2
    assert sum(1 for found in found_alone if found) >= 5
    assert any(len(found) > 1 for found in found_alone)
    for result in made:
        assert result.case.reference not in [d["reference"] for d in result.possible_duplicates]
