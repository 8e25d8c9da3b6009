"""Hand-off to another office: request, four-eyes approval, accept or decline, revoke."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.handoff.conftest import CASES, HANDOFFS, Api, Caller, audit_entries, caller


@pytest.fixture
def requested(
    api: Api, office_b: str, worker_a: dict[str, str], supervisor_a: Caller
) -> dict[str, Any]:
    """A case of office A with a hand-off to office B requested by supervisor_a."""
    case = api.new_case(worker_a)
    response = api.handoff(case["reference"], supervisor_a.headers, kind="office", office=office_b)
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    assert body["status"] == "requested"
    assert body["to_office"] == office_b
    return body


def _approve(api: Api, reference: str, who: Caller) -> Any:
    return api.transition(reference, who.headers, "approved")


def test_four_eyes_on_approval(api: Api, requested: dict[str, Any], supervisor_a: Caller) -> None:
    refused = _approve(api, requested["reference"], supervisor_a)
    assert refused.status_code == 409
    assert "not_handoff_requester" in refused.get_json()["unmet_guards"]


def test_a_caseworker_cannot_approve(
    api: Api, requested: dict[str, Any], worker_a: dict[str, str]
) -> None:
    assert api.transition(requested["reference"], worker_a, "approved").status_code == 403


def test_accept_moves_the_case_and_the_sender_loses_it(
    api: Api,
    client: FlaskClient,
    requested: dict[str, Any],
    worker_a: dict[str, str],
    worker_b: dict[str, str],
    supervisor_a2: Caller,
    supervisor_b: Caller,
    keyed_session: Session,
) -> None:
    reference = requested["reference"]
    # before approval the receiving office can neither accept nor read the case
    assert api.transition(reference, supervisor_b.headers, "accepted").status_code == 404
    assert _approve(api, reference, supervisor_a2).status_code == 200
    assert client.get(f"{CASES}/{reference}", headers=supervisor_b.headers).status_code == 404
    assert client.get(f"{CASES}/{reference}/consents", headers=worker_b).status_code == 404
    # a caseworker of the receiving office may not accept
    assert api.transition(reference, worker_b, "accepted").status_code == 404

    accepted = api.transition(reference, supervisor_b.headers, "accepted")
    assert accepted.status_code == 200, accepted.get_json()

    for path in ("", "/consents", "/history"):
        assert client.get(f"{CASES}/{reference}{path}", headers=worker_a).status_code == 404
    assert client.get(f"{CASES}/{reference}", headers=worker_b).status_code == 200
    assert api.transition(reference, supervisor_a2.headers, "revoked").status_code == 404

    (entry,) = audit_entries(keyed_session, reference, "handoff.accept")
    assert json.loads(entry.fields) == ["office"]
    assert audit_entries(keyed_session, reference, "handoff.approve")
    assert audit_entries(keyed_session, reference, "handoff.request")


def test_decline_keeps_the_case_with_the_sender(
    api: Api,
    client: FlaskClient,
    requested: dict[str, Any],
    worker_a: dict[str, str],
    supervisor_a2: Caller,
    supervisor_b: Caller,
) -> None:
    reference = requested["reference"]
    assert _approve(api, reference, supervisor_a2).status_code == 200
    assert api.transition(reference, supervisor_b.headers, "declined").status_code == 200
    assert client.get(f"{CASES}/{reference}", headers=worker_a).status_code == 200
    assert client.get(f"{CASES}/{reference}", headers=supervisor_b.headers).status_code == 404
    # declined: the receiver no longer reaches it
    assert api.transition(reference, supervisor_b.headers, "accepted").status_code == 404
    items = client.get(HANDOFFS, headers=worker_a).get_json()["items"]
    assert [i["status"] for i in items if i["reference"] == reference] == ["declined"]


def test_revocable_until_accepted(
    api: Api, requested: dict[str, Any], supervisor_a2: Caller, supervisor_b: Caller
) -> None:
    reference = requested["reference"]
    assert _approve(api, reference, supervisor_a2).status_code == 200
    revoked = api.transition(reference, supervisor_a2.headers, "revoked")
    assert revoked.status_code == 200, revoked.get_json()
    assert api.transition(reference, supervisor_b.headers, "accepted").status_code == 404
    assert api.transition(reference, supervisor_a2.headers, "revoked").status_code == 409


def test_only_the_hand_off_endpoint_requests(
    api: Api, requested: dict[str, Any], supervisor_a2: Caller, worker_a: dict[str, str]
) -> None:
    reference = requested["reference"]
    assert api.transition(reference, supervisor_a2.headers, "revoked").status_code == 200
    # the old record's target would pass the guards: the effect refuses the shortcut
    shortcut = api.transition(reference, worker_a, "requested")
    assert shortcut.status_code == 409
    assert "handoffs" in shortcut.get_json()["detail"]


def test_request_refusals(
    api: Api, client: FlaskClient, office_a: str, office_b: str, worker_a: dict[str, str]
) -> None:
    reference = api.new_case(worker_a)["reference"]
    same = api.handoff(reference, worker_a, kind="office", office=office_a)
    assert same.status_code == 409
    assert "handoff_target_valid" in same.get_json()["unmet_guards"]
    unknown = api.handoff(reference, worker_a, kind="office", office="nowhere-9")
    assert unknown.status_code == 422
    assert api.handoff(reference, worker_a, kind="office").status_code == 422
    url = f"{CASES}/{reference}/handoffs"
    body = {"kind": "office", "office": office_b}
    assert client.post(url, json=body, headers=worker_a).status_code == 428
    assert client.post(url, json=body, headers={**worker_a, "If-Match": '"v9"'}).status_code == 412
    assert api.handoff(reference, worker_a, **body).status_code == 201
    # one open hand-off at a time
    assert api.handoff(reference, worker_a, **body).status_code == 409


def test_listing_shows_both_sides_and_nobody_else(
    client: FlaskClient, requested: dict[str, Any], office_a: str, office_b: str, make_office: Any
) -> None:
    third = make_office("zrq-03", "Zarqa")
    seen = {}
    for office in (office_a, office_b, third):
        headers = caller("caseworker", office, f"cw-{office}").headers
        response = client.get(HANDOFFS, headers=headers)
        assert response.status_code == 200
        seen[office] = [i["id"] for i in response.get_json()["items"]]
    assert seen[office_a] == seen[office_b] == [requested["id"]]
    assert seen[third] == []
    item = client.get(HANDOFFS, headers=caller("caseworker", office_b, "x").headers).get_json()
    assert set(item["items"][0]) == {
        "id", "reference", "case_version", "kind", "status", "from_office", "to_office",
        "partner", "requested_by", "requested_at", "approved_by", "approved_at", "closed_at",
        "package_available",
    }  # fmt: skip


def test_listing_pages(
    api: Api, client: FlaskClient, office_b: str, worker_a: dict[str, str]
) -> None:
    for _ in range(3):
        reference = api.new_case(worker_a)["reference"]
        assert api.handoff(reference, worker_a, kind="office", office=office_b).status_code == 201
    first = client.get(HANDOFFS, query_string={"limit": 2}, headers=worker_a).get_json()
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    rest = client.get(
        HANDOFFS, query_string={"limit": 2, "cursor": first["next_cursor"]}, headers=worker_a
    ).get_json()
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None
    bad = client.get(HANDOFFS, query_string={"cursor": "e30"}, headers=worker_a)
    assert bad.status_code == 422
