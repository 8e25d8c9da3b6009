"""What the permission matrix needs from the cases feature: a case in a world's office."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from casework.cases.models import Case, ErasureRequest
from casework.cases.service import bulk_intake
from casework.security.app import holder
from casework.security.case_keys import attach_keyring
from casework.timestamps import utcnow

INTAKE = {
    "members": [
        {"relationship": "principal_applicant", "sex": "female", "full_name": "Matrix Person"}
    ]
}


def new_case(world: Any) -> str:
    """Create (and flush) a case owned by ``world.office``; return its reference."""
    attach_keyring(world.session, holder(world.app).get())
    (case,) = bulk_intake(world.session, world.office, [INTAKE])
    return case.reference


def erasure_request(world: Any) -> uuid.UUID:
    """A pending erasure request (by another supervisor) for a new case of ``world.office``."""
    reference = new_case(world)
    case = world.session.scalars(select(Case).where(Case.reference == reference)).one()
    now = utcnow()
    request = ErasureRequest(
        case_id=case.id,
        office_code=case.office_code,
        status="pending",
        requested_by="matrix-requester",
        requested_at=now,
        expires_at=now + timedelta(days=14),
        version=1,
    )
    request.reason = "Matrix."
    world.session.add(request)
    world.session.flush()
    request_id: uuid.UUID = request.id
    return request_id
