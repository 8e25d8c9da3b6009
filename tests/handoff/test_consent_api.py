"""Consent records: recorded sealed, listed, withdrawn at once; every refusal."""

from __future__ import annotations

import json
import uuid
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.handoff.models import ConsentRow
from tests.handoff.conftest import CASES, Api, audit_entries, consent_body


def _case(api: Api, headers: dict[str, str]) -> tuple[str, str]:
    case = api.new_case(headers)
    return case["reference"], case["members"][0]["id"]


def test_record_list_and_withdraw(
    api: Api, client: FlaskClient, worker_a: dict[str, str], keyed_session: Session
) -> None:
    reference, member_id = _case(api, worker_a)
    before = api.etag(reference, worker_a)
    response = api.consent(reference, worker_a, **consent_body(member_id, ["ngo-one"]))
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["valid"] is True
    assert created["withdrawn_at"] is None
    assert created["fields"] == ["members.full_name", "members.relationship", "members.sex"]
    assert response.headers["ETag"] != before  # the case version moved

    listed = client.get(f"{CASES}/{reference}/consents", headers=worker_a).get_json()["items"]
    assert [c["id"] for c in listed] == [created["id"]]

    withdraw = client.post(
        f"{CASES}/{reference}/consents/{created['id']}/withdraw",
        headers={**worker_a, "If-Match": response.headers["ETag"]},
    )
    assert withdraw.status_code == 200, withdraw.get_json()
    assert withdraw.get_json()["valid"] is False
    assert withdraw.get_json()["withdrawn_at"] is not None

    again = client.post(
        f"{CASES}/{reference}/consents/{created['id']}/withdraw",
        headers={**worker_a, "If-Match": withdraw.headers["ETag"]},
    )
    assert again.status_code == 409


def test_everything_but_ids_is_sealed(
    api: Api, worker_a: dict[str, str], keyed_session: Session
) -> None:
    reference, member_id = _case(api, worker_a)
    body = consent_body(member_id, ["ngo-secret-recipient"])
    assert api.consent(reference, worker_a, **body).status_code == 201
    row = keyed_session.scalars(select(ConsentRow)).one()
    stored = row._consent_ciphertext + row._withdrawal_ciphertext  # type: ignore[attr-defined]
    for value in ("ngo-secret-recipient", "referral", member_id, "members.full_name"):
        assert value.encode() not in stored
    assert row.consent is not None
    assert row.consent["recipients"] == ["ngo-secret-recipient"]


def test_audit_names_fields_never_values(
    api: Api, client: FlaskClient, worker_a: dict[str, str], keyed_session: Session
) -> None:
    reference, member_id = _case(api, worker_a)
    created = api.consent(reference, worker_a, **consent_body(member_id, ["ngo-one"]))
    consent_id = created.get_json()["id"]
    client.post(
        f"{CASES}/{reference}/consents/{consent_id}/withdraw",
        headers={**worker_a, "If-Match": created.headers["ETag"]},
    )
    (recorded,) = audit_entries(keyed_session, reference, "consent.record")
    (withdrawn,) = audit_entries(keyed_session, reference, "consent.withdraw")
    assert "consents.recipients" in recorded.fields
    assert json.loads(withdrawn.fields) == ["consents.withdrawn_at"]
    for entry in (recorded, withdrawn):
        text = repr(entry.fields)
        assert "ngo-one" not in text
        assert member_id not in text
        assert "referral" not in text


def test_refusals(
    api: Api, client: FlaskClient, worker_a: dict[str, str], worker_b: dict[str, str]
) -> None:
    reference, member_id = _case(api, worker_a)
    url = f"{CASES}/{reference}/consents"
    body = consent_body(member_id, ["ngo-one"])
    assert client.post(url, json=body, headers=worker_a).status_code == 428
    stale = client.post(url, json=body, headers={**worker_a, "If-Match": '"v99"'})
    assert stale.status_code == 412
    other = client.post(url, json=body, headers={**worker_b, "If-Match": '"v1"'})
    assert other.status_code == 404
    assert client.get(url, headers=worker_b).status_code == 404

    stranger = api.consent(reference, worker_a, **consent_body(str(uuid.uuid4()), ["ngo-one"]))
    assert stranger.status_code == 422
    assert stranger.get_json()["errors"]["json"]["given_by"] == ["Not a member of this case."]

    bad_field = consent_body(member_id, ["ngo-one"], fields=["members.shoe_size"])
    refused = api.consent(reference, worker_a, **bad_field)
    assert refused.status_code == 422
    assert "fields" in refused.get_json()["errors"]["json"]

    unknown = api.consent(reference, worker_a, **{**body, "note": "x"})
    assert unknown.status_code == 422

    missing = client.post(
        f"{url}/{uuid.uuid4()}/withdraw",
        headers={**worker_a, "If-Match": api.etag(reference, worker_a)},
    )
    assert missing.status_code == 404


def test_a_consent_of_another_case_cannot_be_withdrawn_through_this_one(
    api: Api, client: FlaskClient, worker_a: dict[str, str]
) -> None:
    first, member_id = _case(api, worker_a)
    second, _ = _case(api, worker_a)
    consent_id = api.consent(first, worker_a, **consent_body(member_id, ["ngo-one"])).get_json()[
        "id"
    ]
    response = client.post(
        f"{CASES}/{second}/consents/{consent_id}/withdraw",
        headers={**worker_a, "If-Match": api.etag(second, worker_a)},
    )
    assert response.status_code == 404


def test_admin_and_auditor_see_no_consent(
    api: Api, client: FlaskClient, worker_a: dict[str, str], as_role: Any
) -> None:
    reference, _ = _case(api, worker_a)
    for role in ("admin", "auditor"):
        response = client.get(f"{CASES}/{reference}/consents", headers=as_role(role))
        assert response.status_code in (403, 404)
