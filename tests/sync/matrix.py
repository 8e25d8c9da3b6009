"""Objects the permission matrix needs for the sync routes."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from casework.cases.models import Case
from casework.sync.models import Device, SyncConflict
from tests.cases import matrix as cases_matrix


def device(world: Any) -> str:
    """A device of the world's office, written directly (enrolment has its own tests)."""
    row = Device(
        id=uuid.uuid4(), office_code=world.office, label="Laptop", public_key=bytes(32), next_seq=1
    )
    world.session.add(row)
    world.session.flush()
    return str(row.id)


def conflict(world: Any) -> str:
    """An open conflict on a new case of the world's office."""
    reference = cases_matrix.new_case(world)
    case = world.session.scalar(select(Case).where(Case.reference == reference))
    row = SyncConflict(
        case_id=case.id,
        office_code=world.office,
        reference=reference,
        device_id=uuid.uuid4(),
        mutation_id=uuid.uuid4(),
        base_version=1,
        server_version=1,
        status="open",
        version=1,
    )
    row.fields = {"items": [{"field": "specific_needs", "server": [], "device": ["SC-UC"]}]}
    world.session.add(row)
    world.session.flush()
    return str(row.id)
