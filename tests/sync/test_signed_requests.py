"""Signed device requests: every refusal the contract names, each logged."""

from __future__ import annotations

import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.audit.models import AuditEntry
from tests.sync.signing import Device, signed_headers

BAD_SIGNATURE = "urn:casework:problem:bad-signature"


def refusals(session: Session) -> int:
    return len(
        session.scalars(
            select(AuditEntry.seq).where(AuditEntry.action == "sync.signature_rejected")
        ).all()
    )


def assert_bad_signature(response: Any) -> None:
    assert response.status_code == 401, response.get_json()
    assert response.get_json()["type"] == BAD_SIGNATURE


def test_a_signed_pull_with_a_bound_token_works(device: Device) -> None:
    assert device.pull().status_code == 200


def test_replayed_nonce_is_refused(device: Device, db_session: Session) -> None:
    assert device.pull(limit=5).status_code == 200
    before = refusals(db_session)
    # The same nonce again: a replay, whatever else is fresh.
    device.request("GET", "/api/v1/sync/changes", nonce="fixed-nonce-123")
    assert_bad_signature(device.request("GET", "/api/v1/sync/changes", nonce="fixed-nonce-123"))
    assert refusals(db_session) == before + 1


def test_stale_created_is_refused_with_the_server_time(device: Device) -> None:
    response = device.request("GET", "/api/v1/sync/changes", created=int(time.time()) - 301)
    assert_bad_signature(response)
    assert "server_time" in response.get_json()
    assert response.headers["Date"].endswith("GMT")
    future = device.request("GET", "/api/v1/sync/changes", created=int(time.time()) + 400)
    assert_bad_signature(future)


def test_tampered_body_is_refused(device: Device) -> None:
    body = {"mutations": []}
    assert_bad_signature(device.request("POST", "/api/v1/sync/push", body, tamper=b'{"x": 1}'))


def test_wrong_key_is_refused(device: Device, db_session: Session) -> None:
    impostor = Device(device.client, device.device_id, Ed25519PrivateKey.generate())
    impostor.token = device.token
    before = refusals(db_session)
    assert_bad_signature(impostor.pull())
    assert refusals(db_session) == before + 1


def test_unsigned_components_are_refused(device: Device) -> None:
    # The token is sent but not covered by the signature.
    response = device.request("GET", "/api/v1/sync/changes", components=["@method", "@target-uri"])
    assert_bad_signature(response)


def test_a_device_bound_token_without_a_signature_is_refused_everywhere(
    client: FlaskClient, device: Device
) -> None:
    bearer = {"Authorization": f"Bearer {device.token}"}
    for path in ("/api/v1/auth/me", "/api/v1/cases", "/api/v1/sync/changes"):
        response = client.get(path, headers=bearer)
        assert response.status_code == 401, path
    # Signed, the same token works on any route the user may use.
    assert device.request("GET", "/api/v1/auth/me").status_code == 200


def test_a_device_without_a_token_may_do_nothing(device: Device) -> None:
    assert device.request("GET", "/api/v1/sync/changes", token=False).status_code == 403
    assert device.request("GET", "/api/v1/cases", token=False).status_code == 403


def test_a_token_without_a_device_is_refused_on_sync(
    client: FlaskClient, make_user: Any, login_headers: Any, office: str
) -> None:
    user = make_user("caseworker", office)
    headers = login_headers(user)
    assert client.get("/api/v1/sync/changes", headers=headers).status_code == 401
    assert client.post(
        "/api/v1/sync/push", json={"mutations": []}, headers=headers
    ).status_code in (
        401,
        422,
    )


def test_a_staff_token_on_a_signed_request_is_refused(
    device: Device, make_user: Any, login_headers: Any, office: str
) -> None:
    staff_token = login_headers(make_user("caseworker", office))["Authorization"].split()[1]
    response = device.request("GET", "/api/v1/sync/changes", token=staff_token)
    assert response.status_code == 401


def test_login_must_be_by_a_user_of_the_device_office(
    make_office: Any, make_user: Any, new_device: Any, office: str
) -> None:
    make_office("amm")
    stranger = make_user("caseworker", "amm")
    device = new_device(office)
    assert device.login(stranger.username, "plum-orbit-lantern-9").status_code == 401


def test_the_access_log_names_user_and_device(device: Device, db_session: Session) -> None:
    device.pull()
    login = db_session.scalars(
        select(AuditEntry).where(AuditEntry.action == "auth.login").order_by(AuditEntry.seq)
    ).all()[-1]
    assert login.device == device.device_id
    assert login.actor == str(device.user.id)  # type: ignore[attr-defined]


def test_unknown_keyid_is_refused(client: FlaskClient) -> None:
    key = Ed25519PrivateKey.generate()
    headers = signed_headers(
        key,
        "00000000-0000-0000-0000-000000000000",
        "GET",
        "http://localhost/api/v1/sync/changes",
        b"",
        None,
    )
    assert_bad_signature(client.get("/api/v1/sync/changes", headers=headers))
