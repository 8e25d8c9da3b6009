"""What the permission matrix needs from the cases feature: a case in a world's office."""

from __future__ import annotations

from typing import Any

from casework.cases.service import bulk_intake
from casework.security.app import holder
from casework.security.case_keys import attach_keyring

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
