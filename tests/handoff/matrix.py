"""What the permission matrix needs from the hand-off feature: consents, partners, a package."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import select

from casework.cases.models import Case
from casework.handoff.models import ConsentRow, Handoff, Partner
from tests.cases import matrix as cases_matrix


def _case(world: Any) -> Case:
    reference = cases_matrix.new_case(world)
    case: Case = world.session.scalars(select(Case).where(Case.reference == reference)).one()
    return case


def public_key() -> str:
    raw = (
        X25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return base64.b64encode(raw).decode()


def consent_call(world: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Path values and a valid ``ConsentIn`` body for a new case of ``world.office``."""
    case = _case(world)
    body = {
        "purpose": "data_sharing",
        "recipients": ["ngo-x"],
        "given_by": str(case.members[0].id),
        "given_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
    }
    return {"reference": case.reference}, body


def consent_path(world: Any) -> dict[str, Any]:
    """Path values naming a consent (not withdrawn) of a new case of ``world.office``."""
    case = _case(world)
    given = {
        "purpose": "referral",
        "recipients": ["ngo-x"],
        "given_by": str(case.members[0].id),
        "given_at": datetime.now(UTC).isoformat(),
        "expires_at": None,
        "fields": [],
    }
    row = ConsentRow(case_id=case.id, consent=given)
    world.session.add(row)
    world.session.flush()
    return {"reference": case.reference, "consent_id": row.id}


def partner(world: Any) -> Partner:
    found = Partner(
        code=world.unique("p"),
        name="Matrix partner",
        public_key=base64.b64decode(public_key()),
        is_active=True,
    )
    world.session.add(found)
    world.session.flush()
    return found


def package_path(world: Any) -> dict[str, Any]:
    """Path values naming a sent hand-off whose package waits for download."""
    case = _case(world)
    row = Handoff(
        case_id=case.id,
        kind="partner",
        status="sent",
        from_office=case.office_code,
        partner_id=partner(world).id,
        requested_by="matrix",
        package=b"CWPP-matrix",
        package_fields=["members.full_name"],
    )
    world.session.add(row)
    world.session.flush()
    return {"reference": case.reference, "handoff_id": row.id}
