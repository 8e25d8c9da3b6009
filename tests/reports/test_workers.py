"""Worker processes read and count their own slices of a database others can open.

They read committed rows on connections of their own, so these tests use a
database of their own, committed, rather than the rolled-back transaction of
the other tests.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select, update

from casework import create_app, migrate
from casework.cases.codes import needs_catalogue
from casework.cases.models import Case, CaseMember
from casework.cases.seeding import seed_cases
from casework.db import get_db, make_engine
from casework.reports import counting, service
from casework.reports.codes import ReportName, age_band
from casework.reports.models import ReportEvent
from casework.reports.suppression import Atom
from casework.security.app import ensure_keyring, holder
from casework.security.case_keys import attach_keyring
from casework.timestamps import utcnow

OFFICES = ("rpt-w-one", "rpt-w-two")
SOURCES = ("people", "funnel", "decision")
PEOPLE = ReportName.PEOPLE_BY_SEX_AGE_NEEDS.value


@pytest.fixture(scope="module")
def committed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """An app on a SQLite file of its own: two offices of synthetic households, steps of some."""
    folder: Path = tmp_path_factory.mktemp("reports-workers")
    url = f"sqlite:///{folder / 'reports.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    app = create_app({"database_url": url, "instance_path": str(folder / "instance")})
    ensure_keyring(app)
    with app.app_context(), get_db(app).session_factory() as session:
        attach_keyring(session, holder(app).get())
        seed_cases(session, count=30, office=OFFICES[0], seed=5, batch_size=30)
        seed_cases(session, count=17, office=OFFICES[1], seed=6, batch_size=17)
        for number, case_id in enumerate(session.scalars(select(Case.id)).all()):
            if number % 3:
                continue
            funnel = ReportEvent(case_id=case_id, occurred_at=datetime(2026, 2, 3, tzinfo=UTC))
            funnel.details = {"kind": "funnel", "step": "submitted", "categories": ["medical"]}
            decision = ReportEvent(case_id=case_id, occurred_at=datetime(2026, 1, 9, tzinfo=UTC))
            decision.details = {"kind": "decision", "decision": "vetting", "outcome": "cleared"}
            session.add_all([funnel, decision])
        session.commit()
    yield app
    get_db(app).engine.dispose()


def counts(app: Flask, source: str, workers: int) -> tuple[dict[str, Counter[Atom]], list[float]]:
    worker_cpu: list[float] = []
    with app.app_context(), get_db(app).session_factory() as session:
        attach_keyring(session, holder(app).get())
        settings = service.Settings(k=5, rounding=0, workers=workers)
        return service.count_atoms(session, source, settings, worker_cpu), worker_cpu


@pytest.mark.parametrize("source", SOURCES)
def test_workers_count_what_the_calling_process_counts(
    committed: Flask,
    source: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One slice in this process, or slices of four cases spread over two workers: same atoms."""
    alone, in_process = counts(committed, source, 2)  # too few cases for the pool
    assert alone
    assert not in_process
    monkeypatch.setattr(service, "BATCH_CASES", 4)
    with caplog.at_level(logging.DEBUG):
        pooled, slices = counts(committed, source, 2)
    assert pooled == alone
    assert len(slices) == 12  # 47 cases, 4 a slice: each counted once, in a worker
    values = {value for grid in alone.values() for _, _, cell in grid for value in cell}
    assert values
    assert not any(value in caplog.text for value in values if len(value) > 3)


def test_the_counts_are_those_of_the_households_read_through_the_models(committed: Flask) -> None:
    """What the reader decrypts directly is what the sealed attributes hold."""
    families = {code: need.family for code, need in needs_catalogue().needs.items()}
    expected: Counter[Atom] = Counter()
    with committed.app_context(), get_db(committed).session_factory() as session:
        attach_keyring(session, holder(committed).get())
        for case in session.scalars(select(Case)):
            needs = sorted({families[code] for code in case.specific_needs or []}) or ["none"]
            month = f"{case.created_at:%Y-%m}"
            members = session.scalars(select(CaseMember).where(CaseMember.case_id == case.id))
            for member in members:
                band = age_band(member.birth_year, utcnow().year).value
                sex = member.sex or "unknown"
                for family in needs:
                    expected[(case.office_code, month, (sex, band, family))] += 1
    people, _ = counts(committed, "people", 1)
    assert people[PEOPLE] == expected


def test_a_moved_ciphertext_counts_its_household_once_as_unreadable(
    committed: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sex ciphertext copied onto another member fails the tag (it names its row): the
    household counts once, as unreadable, in one process and in the workers."""
    before, _ = counts(committed, "people", 1)
    with committed.app_context(), get_db(committed).session_factory() as session:
        first, second = session.execute(
            select(CaseMember.id, CaseMember.case_id).order_by(CaseMember.id).limit(2)
        ).all()
        blob = session.execute(
            select(CaseMember.__table__.c.sex).where(CaseMember.id == first.id)
        ).scalar_one()
        original = session.execute(
            select(CaseMember.__table__.c.sex).where(CaseMember.id == second.id)
        ).scalar_one()
        table = CaseMember.__table__
        session.execute(update(table).where(table.c.id == second.id).values(sex=blob))
        session.commit()
    try:
        alone, _ = counts(committed, "people", 1)
        monkeypatch.setattr(service, "BATCH_CASES", 4)
        pooled, _ = counts(committed, "people", 2)
    finally:
        with committed.app_context(), get_db(committed).session_factory() as session:
            session.execute(update(table).where(table.c.id == second.id).values(sex=original))
            session.commit()
    unreadable = [n for (_, _, cell), n in alone[PEOPLE].items() if cell[0] == counting.UNREADABLE]
    assert unreadable == [1]
    assert pooled == alone
    readable = [n for (_, _, cell), n in alone[PEOPLE].items() if cell[0] != counting.UNREADABLE]
    assert sum(readable) < sum(before[PEOPLE].values())


def test_an_in_memory_database_is_counted_in_the_calling_process() -> None:
    from sqlalchemy.engine import make_url

    assert not service._shared(make_url("sqlite://"))
    assert not service._shared(make_url("sqlite:///file:reports?mode=memory&uri=true"))
    assert service._shared(make_url("sqlite:////tmp/reports.db"))
    assert service._shared(make_url("postgresql+psycopg://u@localhost/reports"))
