"""A real service (real commits) with an enrolled device and a signed-in caseworker."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from casework.cases.models import Case
from casework.db import get_db
from tests.auth.helpers import TEST_PASSWORD, create_user, fresh_code
from tests.cases.scratch import Scratch
from tests.sync.signing import Device, enrol

ADMIN = {"X-Test-Principal": "admin;;admin"}


def signed_in_device(scratch: Scratch, office: str, client: Any | None = None) -> Device:
    client = client or scratch.app.test_client()
    code = client.post(
        "/api/v1/devices/enrolment-codes", json={"office": office, "label": "L"}, headers=ADMIN
    ).get_json()["code"]
    device = enrol(client, code)
    with get_db(scratch.app).session_factory() as session:
        user = create_user(scratch.app, session, "caseworker", office)  # MFA as required
        session.commit()
        username = user.username
        totp = fresh_code(scratch.app, session, user) if user.mfa_enabled_at else None
        session.commit()
    response = device.login(username, TEST_PASSWORD, totp)
    assert response.status_code == 200, response.get_json()
    return device


def server_pairs(scratch: Scratch, office: str) -> dict[str, int]:
    with get_db(scratch.app).session_factory() as session:
        rows = session.execute(
            select(Case.reference, Case.version).where(
                Case.office_code == office, Case.erased_at.is_(None)
            )
        )
        return {str(reference): int(version) for reference, version in rows}


def apply(replica: dict[str, int], changes: list[dict[str, Any]]) -> None:
    for change in changes:
        if change["op"] == "upsert":
            replica[change["reference"]] = change["version"]
        else:
            replica.pop(change["reference"], None)
