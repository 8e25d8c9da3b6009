"""Fixtures of the reports and retention tests: offices, a household factory, callers."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from casework.cases.models import Case
from casework.cases.service import bulk_intake
from casework.reports.models import ReportEvent
from casework.security.app import holder
from casework.security.case_keys import attach_keyring
from tests.conftest import principal_headers

REPORTS = "/api/v1/reports"
BIG, SMALL = "rpt-big", "rpt-small"
_serial = itertools.count(1)


def person(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "relationship": "principal_applicant",
        "sex": "female",
        "birth_year": 1990,
        "full_name": f"Report Person {next(_serial):05d}",
    }
    body.update(fields)
    return body


def child(**fields: Any) -> dict[str, Any]:
    body = {
        "relationship": "child",
        "birth_year": datetime.now(UTC).year - 6,
        "birth_registration": "certificate_issued",
        "nationality_status": "nationality_confirmed",
    }
    return person(**{**body, **fields})


@pytest.fixture
def offices(make_office: Any) -> tuple[str, str]:
    return make_office(BIG, "Big office"), make_office(SMALL, "Small office", "JOR")


@pytest.fixture
def add_cases(app: Flask, db_session: Session) -> Callable[..., list[Case]]:
    """``add_cases(office, households, month="2026-01", **columns)`` -> the flushed cases."""
    attach_keyring(db_session, holder(app).get())

    def add(
        office: str, households: Sequence[dict[str, Any]], month: str = "2026-01", **columns: Any
    ) -> list[Case]:
        cases = bulk_intake(db_session, office, list(households))
        year, number = (int(part) for part in month.split("-"))
        for case in cases:
            case.created_at = datetime(year, number, 10, tzinfo=UTC)
            for name, value in columns.items():
                setattr(case, name, value)
        db_session.flush()
        return cases

    return add


@pytest.fixture
def add_event(db_session: Session) -> Callable[..., ReportEvent]:
    """``add_event(case, month, details)``: a counted step, sealed as the workflow effect does."""

    def add(case: Case, month: str, details: dict[str, Any]) -> ReportEvent:
        year, number = (int(part) for part in month.split("-"))
        event = ReportEvent(case_id=case.id, occurred_at=datetime(year, number, 3, tzinfo=UTC))
        event.details = details
        db_session.add(event)
        db_session.flush()
        return event

    return add


@pytest.fixture
def analyst() -> dict[str, str]:
    return principal_headers("analyst", None, "analyst-1")


def cells(body: dict[str, Any], **where: str) -> list[dict[str, Any]]:
    return [c for c in body["cells"] if all(c.get(k) == v for k, v in where.items())]


def count_of(cell: dict[str, Any]) -> int | None:
    """A cell's count, or None when suppressed."""
    value = cell["count"]
    if isinstance(value, dict):
        assert value == {"suppressed": True}
        return None
    assert isinstance(value, int)
    return value
