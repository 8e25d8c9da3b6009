"""The workflow effect that records the steps the reports count, sealed, and erases them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.cases.models import Case
from casework.reports import service
from casework.reports.models import ReportEvent
from casework.workflow.facts import TransitionContext, hooks, run_effects
from casework.workflow.guards import Actor, CaseFacts
from casework.workflow.machines import Process, find_transition
from casework.workflow.models import CaseWorkflow
from tests.conftest import stored_ciphertexts
from tests.reports.conftest import BIG, person

WHEN = datetime(2026, 5, 17, 9, tzinfo=UTC)


def take(session: Session, case: Case, process: Process, from_state: str, to_state: str) -> None:
    """Run the registered effects of one real transition, as the workflow service does."""
    transition = find_transition(process, from_state, to_state)
    assert transition is not None
    actor = Actor("officer-1", frozenset(), case.office_code)
    facts = CaseFacts(office=case.office_code, now=WHEN)
    run_effects(TransitionContext(session, case, transition, actor, facts, {}, WHEN))
    session.flush()


def test_counted_steps_are_recorded_sealed_and_erased_with_the_case(
    app: Flask, db_session: Session, offices: Any, add_cases: Callable[..., list[Case]]
) -> None:
    assert (Process.RESETTLEMENT, None, service.record_event) in hooks(app).effects
    (case,) = add_cases(BIG, [{"members": [person()]}])
    row = CaseWorkflow(case_id=case.id)
    row.submission = {"categories": ["medical_needs"], "priority": "normal"}
    row.first_instance_outcome = "recognized"
    db_session.add(row)
    db_session.flush()
    with app.app_context():
        take(db_session, case, Process.RESETTLEMENT, "departed", "arrived")
        take(db_session, case, Process.DETERMINATION, "supervisor_review", "decided")
        take(db_session, case, Process.CASE_STAGE, "intake", "vetting")  # not counted
    events = db_session.scalars(select(ReportEvent).where(ReportEvent.case_id == case.id)).all()
    assert sorted((e.details or {}).get("kind", "") for e in events) == ["decision", "funnel"]
    by_kind = {(e.details or {})["kind"]: e.details for e in events}
    assert by_kind["funnel"] == {
        "kind": "funnel",
        "step": "arrived",
        "categories": ["medical_needs"],
    }
    assert by_kind["decision"]["outcome"] == "recognized"
    assert all(e.occurred_at == WHEN for e in events)
    for blob in stored_ciphertexts(db_session, ReportEvent):
        assert blob is not None
        assert b"arrived" not in blob
        assert b"recognized" not in blob
    with app.app_context():
        service.erase_events(db_session, case)
    assert not db_session.scalars(select(ReportEvent).where(ReportEvent.case_id == case.id)).all()
