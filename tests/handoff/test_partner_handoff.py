"""Partners, and hand-off to a partner: consent, four-eyes, a package downloadable once."""

from __future__ import annotations

import json
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.handoff.models import ConsentRow, Handoff
from casework.handoff.partner_package import open_package
from casework.security.app import holder
from casework.workflow.models import CaseWorkflow
from tests.conftest import erase_by_two_people, principal_headers, stored_ciphertexts
from tests.handoff.conftest import (
    CASES,
    PARTNERS,
    Api,
    Caller,
    audit_entries,
    b64,
    consent_body,
    raw,
)

LOW_ORDER_POINT = bytes(32)  # the all-zero X25519 point: every shared secret would be zero


def test_register_list_and_deactivate(client: FlaskClient, admin: Caller) -> None:
    key = b64(raw(X25519PrivateKey.generate().public_key()))
    body = {"code": "ngo-two", "name": "NGO Two", "public_key": key}
    created = client.post(PARTNERS, json=body, headers=admin.headers)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["public_key"] == key
    assert len(created.get_json()["public_key_fingerprint"].split()) == 16
    assert client.post(PARTNERS, json=body, headers=admin.headers).status_code == 409
    listed = client.get(PARTNERS, headers=admin.headers).get_json()["items"]
    assert [p["code"] for p in listed] == ["ngo-two"]
    off = client.post(f"{PARTNERS}/ngo-two/deactivate", headers=admin.headers)
    assert off.status_code == 200
    assert off.get_json()["active"] is False
    assert client.post(f"{PARTNERS}/nobody/deactivate", headers=admin.headers).status_code == 404


@pytest.mark.parametrize(
    "key",
    [b64(LOW_ORDER_POINT), b64(b"short"), "not base64!", b64(bytes(31) + b"\x01") + "x"],
)
def test_unsafe_or_malformed_keys_are_refused(client: FlaskClient, admin: Caller, key: str) -> None:
    body = {"code": "ngo-bad", "name": "Bad", "public_key": key}
    assert client.post(PARTNERS, json=body, headers=admin.headers).status_code == 422


def test_supervisors_do_not_manage_partners(client: FlaskClient, supervisor_a: Caller) -> None:
    assert client.get(PARTNERS, headers=supervisor_a.headers).status_code == 403


def _sent(
    api: Api,
    worker_a: dict[str, str],
    supervisor_a2: Caller,
    partner: str,
    fields: list[str],
) -> tuple[str, str]:
    """A case sent to ``partner`` with consent for ``fields``: (reference, hand-off id)."""
    case = api.new_case(worker_a, phone="+962 6 000 0000", narrative="Kept at home.")
    member_id = case["members"][0]["id"]
    consent = api.consent(
        case["reference"], worker_a, **consent_body(member_id, [partner], fields=fields)
    )
    assert consent.status_code == 201, consent.get_json()
    handoff = api.handoff(case["reference"], worker_a, kind="partner", partner=partner)
    assert handoff.status_code == 201, handoff.get_json()
    reference = case["reference"]
    assert api.transition(reference, supervisor_a2.headers, "approved").status_code == 200
    sent = api.transition(reference, supervisor_a2.headers, "sent")
    assert sent.status_code == 200, sent.get_json()
    return reference, handoff.get_json()["id"]


def test_package_holds_only_consented_fields_and_downloads_once(
    app: Flask,
    api: Api,
    client: FlaskClient,
    worker_a: dict[str, str],
    supervisor_a2: Caller,
    partner: str,
    partner_key: X25519PrivateKey,
    keyed_session: Session,
) -> None:
    fields = ["members.full_name", "members.sex", "members.relationship"]
    reference, handoff_id = _sent(api, worker_a, supervisor_a2, partner, fields)
    url = f"{CASES}/{reference}/handoffs/{handoff_id}/package"
    assert client.get(url, headers=worker_a).status_code == 403  # handoff:approve only
    response = client.get(url, headers=supervisor_a2.headers)
    assert response.status_code == 200
    assert response.mimetype == "application/octet-stream"
    verify = holder(app).get().verify_key
    metadata, opened = open_package(response.data, partner_key, verify)
    assert set(opened) == {"members"}
    assert set(opened["members"][0]) == {"full_name", "sex", "relationship"}
    assert metadata["reference"] == reference
    assert metadata["fields"] == sorted(fields)

    assert client.get(url, headers=supervisor_a2.headers).status_code == 410
    (entry,) = audit_entries(keyed_session, reference, "handoff.export")
    assert json.loads(entry.fields) == sorted(fields)
    assert opened["members"][0]["full_name"] not in entry.fields


def test_partner_hand_off_needs_consent(api: Api, worker_a: dict[str, str], partner: str) -> None:
    case = api.new_case(worker_a)
    refused = api.handoff(case["reference"], worker_a, kind="partner", partner=partner)
    assert refused.status_code == 409
    assert "consent_for_partner" in refused.get_json()["unmet_guards"]
    other = consent_body(case["members"][0]["id"], ["someone-else"])
    assert api.consent(case["reference"], worker_a, **other).status_code == 201
    refused = api.handoff(case["reference"], worker_a, kind="partner", partner=partner)
    assert refused.status_code == 409
    unknown = api.handoff(case["reference"], worker_a, kind="partner", partner="ngo-unknown")
    assert unknown.status_code == 422


def test_withdrawal_blocks_at_once(
    api: Api,
    client: FlaskClient,
    worker_a: dict[str, str],
    supervisor_a2: Caller,
    partner: str,
) -> None:
    case = api.new_case(worker_a)
    reference = case["reference"]
    consent = api.consent(reference, worker_a, **consent_body(case["members"][0]["id"], [partner]))
    assert api.handoff(reference, worker_a, kind="partner", partner=partner).status_code == 201
    withdrawn = client.post(
        f"{CASES}/{reference}/consents/{consent.get_json()['id']}/withdraw",
        headers={**worker_a, "If-Match": api.etag(reference, worker_a)},
    )
    assert withdrawn.status_code == 200
    approve = api.transition(reference, supervisor_a2.headers, "approved")
    assert approve.status_code == 409
    assert "consent_for_partner" in approve.get_json()["unmet_guards"]


def test_withdrawal_after_approval_blocks_the_send(
    api: Api,
    client: FlaskClient,
    worker_a: dict[str, str],
    supervisor_a2: Caller,
    partner: str,
) -> None:
    case = api.new_case(worker_a)
    reference = case["reference"]
    consent = api.consent(reference, worker_a, **consent_body(case["members"][0]["id"], [partner]))
    assert api.handoff(reference, worker_a, kind="partner", partner=partner).status_code == 201
    assert api.transition(reference, supervisor_a2.headers, "approved").status_code == 200
    client.post(
        f"{CASES}/{reference}/consents/{consent.get_json()['id']}/withdraw",
        headers={**worker_a, "If-Match": api.etag(reference, worker_a)},
    )
    sent = api.transition(reference, supervisor_a2.headers, "sent")
    assert sent.status_code == 409
    assert "consent_for_partner" in sent.get_json()["unmet_guards"]


def test_the_requester_cannot_send(
    api: Api, worker_a: dict[str, str], supervisor_a: Caller, supervisor_a2: Caller, partner: str
) -> None:
    case = api.new_case(worker_a)
    reference = case["reference"]
    api.consent(reference, worker_a, **consent_body(case["members"][0]["id"], [partner]))
    assert (
        api.handoff(reference, supervisor_a.headers, kind="partner", partner=partner).status_code
        == 201
    )
    assert api.transition(reference, supervisor_a2.headers, "approved").status_code == 200
    refused = api.transition(reference, supervisor_a.headers, "sent")
    assert refused.status_code == 409
    assert "not_handoff_requester" in refused.get_json()["unmet_guards"]


def test_no_send_to_a_deactivated_partner(
    api: Api,
    client: FlaskClient,
    admin: Caller,
    worker_a: dict[str, str],
    supervisor_a2: Caller,
    partner: str,
) -> None:
    case = api.new_case(worker_a)
    reference = case["reference"]
    api.consent(reference, worker_a, **consent_body(case["members"][0]["id"], [partner]))
    assert api.handoff(reference, worker_a, kind="partner", partner=partner).status_code == 201
    assert api.transition(reference, supervisor_a2.headers, "approved").status_code == 200
    client.post(f"{PARTNERS}/{partner}/deactivate", headers=admin.headers)
    refused = api.transition(reference, supervisor_a2.headers, "sent")
    assert refused.status_code == 409
    assert refused.get_json()["detail"] == "The partner is deactivated."


def test_package_of_an_office_hand_off_or_another_case_is_not_found(
    api: Api, client: FlaskClient, worker_a: dict[str, str], supervisor_a2: Caller, office_b: str
) -> None:
    case = api.new_case(worker_a)
    handoff = api.handoff(case["reference"], worker_a, kind="office", office=office_b).get_json()
    url = f"{CASES}/{case['reference']}/handoffs/{handoff['id']}/package"
    assert client.get(url, headers=supervisor_a2.headers).status_code == 404
    other = api.new_case(worker_a)["reference"]
    url = f"{CASES}/{other}/handoffs/{handoff['id']}/package"
    assert client.get(url, headers=supervisor_a2.headers).status_code == 404


def test_partner_management_is_audited_by_code_without_keys(
    client: FlaskClient, admin: Caller, db_session: Session
) -> None:
    key = b64(raw(X25519PrivateKey.generate().public_key()))
    body = {"code": "ngo-audit", "name": "NGO Audit", "public_key": key}
    assert client.post(PARTNERS, json=body, headers=admin.headers).status_code == 201
    assert client.get(PARTNERS, headers=admin.headers).status_code == 200
    assert client.post(f"{PARTNERS}/ngo-audit/deactivate", headers=admin.headers).status_code == 200
    rows = audit_entries(db_session, target="partner:ngo-audit")
    assert [(row.action, json.loads(row.fields)) for row in rows] == [
        ("partner.register", ["code", "name", "public_key"]),
        ("partner.deactivate", ["is_active"]),
    ]
    assert audit_entries(db_session, action="partner.read")
    assert all(key not in row.fields for row in audit_entries(db_session))


def test_erasure_deletes_an_undelivered_package_and_overwrites_consents(
    api: Api,
    client: FlaskClient,
    db_session: Session,
    worker_a: dict[str, str],
    supervisor_a2: Caller,
    partner: str,
) -> None:
    """The package is sealed to the partner, not under the case key: shredding alone
    would leave it readable to them, so erasure deletes it."""
    reference, sent_id = _sent(api, worker_a, supervisor_a2, partner, ["members.full_name"])
    handoff_id = uuid.UUID(sent_id)
    (package,) = db_session.scalars(select(Handoff.package).where(Handoff.id == handoff_id))
    assert package
    assert all(stored_ciphertexts(db_session, ConsentRow))
    first = principal_headers("supervisor", supervisor_a2.headers["X-Test-Principal"].split(";")[1])
    erased = erase_by_two_people(client, reference, first, supervisor_a2.headers)
    assert erased.status_code == 200, erased.get_json()
    db_session.expire_all()
    (package,) = db_session.scalars(select(Handoff.package).where(Handoff.id == handoff_id))
    assert package is None
    assert set(stored_ciphertexts(db_session, ConsentRow)) == {None}
    assert set(stored_ciphertexts(db_session, Handoff)) == {None}
    assert set(stored_ciphertexts(db_session, CaseWorkflow)) == {None}
    url = f"{CASES}/{reference}/handoffs/{sent_id}/package"
    assert client.get(url, headers=supervisor_a2.headers).status_code == 410
