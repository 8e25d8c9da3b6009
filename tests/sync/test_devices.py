"""Enrolment codes, enrolment, listing and revocation of devices."""

from __future__ import annotations

import uuid
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.audit.models import AuditEntry
from casework.sync import signatures as sig
from tests.conftest import principal_headers
from tests.sync.conftest import ADMIN
from tests.sync.signing import Device, enrol, public_key_b64


def actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))


def test_enrolment_code_needs_devices_manage(client: FlaskClient, office: str) -> None:
    body = {"office": office, "label": "Laptop"}
    refused = client.post(
        "/api/v1/devices/enrolment-codes",
        json=body,
        headers=principal_headers("supervisor", office),
    )
    assert refused.status_code == 403
    issued = client.post("/api/v1/devices/enrolment-codes", json=body, headers=ADMIN)
    assert issued.status_code == 201
    assert set(issued.get_json()) == {"code", "expires_at"}


def test_enrol_and_single_use(
    client: FlaskClient, enrolment_code: Any, db_session: Session
) -> None:
    code = enrolment_code()
    device = enrol(client, code)
    assert device.device_id
    again = Ed25519PrivateKey.generate()
    response = client.post(
        "/api/v1/devices",
        json={
            "code": code,
            "public_key": public_key_b64(again),
            "proof": sig.b64url(again.sign(code.encode())),
        },
    )
    assert response.status_code == 422
    assert "device.enrol" in actions(db_session)


def test_enrol_refuses_a_proof_by_another_key(client: FlaskClient, enrolment_code: Any) -> None:
    code = enrolment_code()
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    response = client.post(
        "/api/v1/devices",
        json={
            "code": code,
            "public_key": public_key_b64(key),
            "proof": sig.b64url(other.sign(code.encode())),
        },
    )
    assert response.status_code == 422
    # The code is still good for the real device.
    enrol(client, code)


def test_list_and_revoke(client: FlaskClient, device: Device, db_session: Session) -> None:
    listed = client.get("/api/v1/devices", headers=ADMIN).get_json()["items"]
    assert [d["device_id"] for d in listed] == [device.device_id]
    assert device.pull().status_code == 200
    revoked = client.post(f"/api/v1/devices/{device.device_id}/revoke", headers=ADMIN)
    assert revoked.status_code == 200
    assert revoked.get_json()["revoked_at"] is not None
    refused = device.pull()
    assert refused.status_code == 401
    assert refused.get_json()["type"] == "urn:casework:problem:device-revoked"
    assert "device.revoke" in actions(db_session)


def test_an_auditor_resolves_a_device_named_in_the_log(client: FlaskClient, device: Device) -> None:
    auditor = principal_headers("auditor")
    answer = client.get(f"/api/v1/audit/actors/{device.device_id}", headers=auditor)
    assert answer.status_code == 200, answer.get_json()
    found = answer.get_json()
    assert found["kind"] == "device"
    assert found["id"] == str(device.device_id)
    assert found["label"]
    assert found["active"] is True
    assert set(found) <= {"id", "kind", "label", "role", "office", "active"}
    missing = client.get(f"/api/v1/audit/actors/{uuid.uuid4()}", headers=auditor)
    assert missing.status_code == 404
