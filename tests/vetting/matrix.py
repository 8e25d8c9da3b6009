"""What the permission matrix needs from vetting: cases at stage vetting, an interview, an alert."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from casework.cases.codes import Stage
from casework.cases.models import Case, DuplicateAlert
from casework.cases.service import bulk_intake
from casework.offices.models import Office
from casework.security.app import holder
from casework.security.case_keys import attach_keyring
from casework.timestamps import utcnow
from casework.vetting.models import VettingInterview
from tests.cases.matrix import INTAKE

THIRD_OFFICE = "mx-third"


def _case(world: Any, office: str | None = None, stage: Stage = Stage.VETTING) -> Case:
    session: Session = world.session
    attach_keyring(session, holder(world.app).get())
    (case,) = bulk_intake(session, office or world.office, [INTAKE])
    case.stage = stage.value
    session.flush()
    return case


def case_path(world: Any) -> dict[str, Any]:
    """A case of the world's office at stage vetting."""
    return {"reference": _case(world).reference}


def interview_call(world: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Path and body scheduling an interview of a new case's member."""
    case = _case(world)
    body = {"members": [str(case.members[0].id)], "scheduled_for": "2030-01-01T09:00:00+00:00"}
    return {"reference": case.reference}, body


def interview_path(world: Any) -> dict[str, Any]:
    """A scheduled interview of a new case (version 1)."""
    case = _case(world)
    interview = VettingInterview(case_id=case.id, interviewer_id="matrix-officer")
    interview.members = [str(case.members[0].id)]
    interview.scheduled_for = datetime(2030, 1, 1, 9, tzinfo=UTC).isoformat()
    interview.conducted_on = None
    interview.interpreter = {"used": False, "language": None}
    interview.notes = None
    world.session.add(interview)
    world.session.flush()
    return {"reference": case.reference, "interview_id": interview.id}


def alert_path(world: Any) -> dict[str, Any]:
    """An alert between a case of the world's office and one of a third office."""
    session: Session = world.session
    if session.get(Office, THIRD_OFFICE) is None:
        session.add(Office(code=THIRD_OFFICE, name="Matrix third", country_code="UGA"))
        session.flush()
    ours, theirs = _case(world), _case(world, THIRD_OFFICE, Stage.INTAKE)
    first, second = sorted((ours, theirs), key=lambda c: c.id)
    alert = DuplicateAlert(
        id=uuid.uuid4(),
        case_id=first.id,
        other_case_id=second.id,
        matched_on="document_number",
        created_at=utcnow(),
    )
    session.add(alert)
    session.flush()
    return {"alert_id": alert.id}
