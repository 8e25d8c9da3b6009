"""What the duplicate check at intake spares: the body in hand, each HMAC once, one SELECT.

The check must find what it found before (tests/cases/test_duplicate_eval.py
measures that); these tests pin the work it no longer does, so the cost the
evaluation reports (``make eval-duplicates``) does not creep back.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import Session

from benchmarks.duplicate_pairs import household_of, pairs
from casework.authz.access import Principal
from casework.cases import duplicates, indexes, reference, service
from casework.cases.models import Case
from casework.security.blind_index import BlindIndexer
from casework.security.case_keys import data_key_cache
from tests.cases.conftest import member, unique

OFFICE = "dup-cost-01"


@pytest.fixture
def worker(make_office: Any) -> Principal:
    make_office(OFFICE, "Duplicate cost")
    return Principal.for_role("caseworker", user_id="cost-worker", office=OFFICE)


def _bodies() -> list[dict[str, Any]]:
    """Eval people, and members with documents, other names and only a date of birth."""
    people = [p for pair in pairs(3, 2, seed=9) for p in (pair.first, pair.second)]
    bodies = [household_of(person) for person in people]
    bodies.append(
        {
            "members": [
                member(
                    full_name="Kim Min-jun",
                    other_names=["Minjun KIM", "?"],
                    birth_year=None,
                    date_of_birth=datetime.date(1990, 4, 2),
                    documents=[
                        {"type": "passport", "number": "M 123-456"},
                        {"type": "national_id", "number": "--"},
                    ],
                ),
                member(relationship="child", full_name="Kim Seo-yeon", birth_year=2015),
            ]
        }
    )
    return bodies


def _plain(members: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [service.plain(m) for m in members]


def test_the_body_gives_the_people_and_probes_decrypting_would(
    app: Flask, keyed_session: Session, worker: Principal
) -> None:
    with app.test_request_context():
        for body in _bodies():
            case = service.intake(keyed_session, worker, body).case
            keyed_session.flush()
            from_body = duplicates.people_from(_plain(body["members"]))
            assert from_body == duplicates.people_of(case)
            expected: set[indexes.Probe] = set()
            for plain in _plain(body["members"]):
                expected |= indexes.member_probes(plain, year_slack=indexes.YEAR_SLACK)
            assert from_body[1] == expected


def test_an_intake_computes_each_blind_index_hmac_once(
    app: Flask, keyed_session: Session, worker: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    computed: Counter[tuple[str, tuple[str, ...], int]] = Counter()
    original = BlindIndexer._truncated_mac

    def counted(self: BlindIndexer, field: str, parts: Sequence[str]) -> int:
        computed[(field, tuple(parts), self.root_version)] += 1
        return original(self, field, parts)

    monkeypatch.setattr(BlindIndexer, "_truncated_mac", counted)
    body = _bodies()[-1]
    with app.test_request_context():
        service.intake(keyed_session, worker, body)
    probes = duplicates.people_from(_plain(body["members"]))[1]
    assert len(computed) == len(probes)  # stored keys are among the looked-up ones
    assert set(computed.values()) == {1}


def test_the_check_reads_candidates_with_their_keys_in_one_statement(
    app: Flask, keyed_session: Session, worker: Principal
) -> None:
    name = f"Park Cheol-su {unique('Q')}"
    with app.test_request_context():
        first = service.intake(keyed_session, worker, {"members": [member(full_name=name)]})
        keyed_session.flush()
        data_key_cache(keyed_session).clear()  # as in the next request: no key in hand
        statements: list[str] = []
        bind = keyed_session.connection()

        @event.listens_for(bind, "before_cursor_execute")
        def _record(_c: Any, _cur: Any, statement: str, *_args: Any) -> None:
            statements.append(statement)

        try:
            second = service.intake(
                keyed_session, worker, {"members": [member(full_name="Pak Chol Su " + name[14:])]}
            )
        finally:
            event.remove(bind, "before_cursor_execute", _record)
    assert [d["reference"] for d in second.possible_duplicates] == [first.case.reference]
    selects = [
        i for i, s in enumerate(statements) if s.lstrip().upper().startswith(("SELECT", "WITH"))
    ]
    lookups = [i for i in selects if "case_blind_indexes" in statements[i]]
    assert len(lookups) == 1
    # the candidate member, its case and its wrapped key came with the lookup
    assert [i for i in selects if i > lookups[0]] == []
    assert data_key_cache(keyed_session).unwraps == 1  # the candidate's, not the new case's


def test_candidates_are_the_lookups_members_decrypted(
    app: Flask, keyed_session: Session, worker: Principal
) -> None:
    with app.test_request_context():
        for body in _bodies():
            service.intake(keyed_session, worker, body)
        keyed_session.flush()
        keyring = indexes.keyring_of(keyed_session)
        for body in _bodies():
            probes = duplicates.people_from(_plain(body["members"]))[1]
            members = indexes.lookup(keyed_session, keyring, probes, office=OFFICE)
            found = indexes.candidates(keyed_session, keyring, probes, office=OFFICE)
            assert members, "each body finds at least its own registration"
            assert [(c.member_id, c.case_id, c.position) for c in found] == [
                (m.id, m.case_id, m.position) for m in members
            ]
            assert [c.reference for c in found] == [m.case.reference for m in members]
            assert [c.plain for c in found] == [indexes.plain_member(m) for m in members]
            case_id = members[0].case_id
            stored = keyed_session.get_one(Case, case_id).members
            assert indexes.household(keyed_session, case_id) == [
                indexes.plain_member(m) for m in stored
            ]


def test_an_intake_checks_its_office_and_references_in_one_statement(
    app: Flask,
    keyed_session: Session,
    worker: Principal,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with app.test_request_context():
        taken = service.intake(keyed_session, worker, _bodies()[0]).case.reference
        keyed_session.flush()
        statements: list[str] = []
        bind = keyed_session.connection()

        @event.listens_for(bind, "before_cursor_execute")
        def _record(_c: Any, _cur: Any, statement: str, *_args: Any) -> None:
            statements.append(statement.lstrip().upper())

        try:
            service.intake(keyed_session, worker, _bodies()[1])
        finally:
            event.remove(bind, "before_cursor_execute", _record)
        first_insert = next(i for i, s in enumerate(statements) if s.startswith("INSERT"))
        assert len(statements[:first_insert]) == 1  # the office and the drawn reference
        draws = iter([taken, *(reference.new_reference() for _ in range(3))])
        monkeypatch.setattr(service, "new_reference", lambda: next(draws))
        again = service.intake(keyed_session, worker, _bodies()[2]).case
        assert again.reference != taken  # a drawn reference in use is drawn again
