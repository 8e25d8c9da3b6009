"""Pulling the feed: snapshot then live, delete and evict, checkpoint, cursor rules."""

from __future__ import annotations

import uuid
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from casework.audit.models import AuditEntry
from casework.cases.models import Case
from casework.security.app import holder
from casework.security.case_keys import attach_keyring
from casework.sync import feed
from casework.sync.models import CaseVersion, FeedEntry
from casework.sync.models import Device as DeviceRow
from tests.conftest import erase_by_two_people, principal_headers, stored_ciphertexts
from tests.sync.conftest import OFFICE, household
from tests.sync.signing import Device

STAFF = principal_headers("supervisor", OFFICE)
SECOND = principal_headers("supervisor", OFFICE, user_id="second-supervisor")
RESYNC = "urn:casework:problem:resync-required"
VERSIONS = CaseVersion.__table__


def create(client: FlaskClient, **member: Any) -> dict[str, Any]:
    response = client.post("/api/v1/cases", json=household(**member), headers=STAFF)
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def patch(client: FlaskClient, reference: str, version: int, body: dict[str, Any]) -> Any:
    return client.patch(
        f"/api/v1/cases/{reference}", json=body, headers={**STAFF, "If-Match": f'"v{version}"'}
    )


def pull_all(device: Device, cursor: str | None = None, limit: int = 100) -> tuple[list[Any], Any]:
    changes: list[Any] = []
    while True:
        response = device.pull(cursor, limit)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        changes += page["changes"]
        cursor = page["cursor"]
        if not page["more"]:
            return changes, page


def replica_checksum(changes: list[Any], replica: dict[str, int] | None = None) -> dict[str, int]:
    replica = dict(replica or {})
    for change in changes:
        if change["op"] == "upsert":
            replica[change["reference"]] = change["version"]
        else:
            replica.pop(change["reference"], None)
    return replica


def hand_over(app: Any, db_session: Session, reference: str, office: str) -> None:
    """Move a case to ``office`` as a hand-off does (a new version), published to the feed."""
    attach_keyring(db_session, holder(app).get())
    feed.install(db_session)
    row = db_session.scalar(select(Case).where(Case.reference == reference))
    assert row is not None
    row.office_code, row.version = office, row.version + 1
    db_session.commit()


def test_snapshot_then_live(client: FlaskClient, device: Device, db_session: Session) -> None:
    first, second = create(client), create(client)
    changes, page = pull_all(device, limit=1)
    assert [c["reference"] for c in changes] == [first["reference"], second["reference"]]
    assert all(c["op"] == "upsert" for c in changes)
    case = changes[0]["case"]
    assert case["members"][0]["full_name"] == "Amina Test"
    assert "allowed_transitions" not in case
    assert "possible_duplicates" not in case
    assert case["workflow"]["states"]["case_stage"] == "intake"
    replica = replica_checksum(changes)
    assert page["checkpoint"]["count"] == 2
    assert page["checkpoint"]["checksum"] == feed.checksum_of(replica.items())
    # Live: an update moves the case to the end of the feed.
    assert patch(client, first["reference"], 1, {"specific_needs": ["SC-UC"]}).status_code == 200
    live, page = pull_all(device, page["cursor"])
    assert [(c["reference"], c["version"]) for c in live] == [(first["reference"], 2)]
    assert live[0]["case"]["specific_needs"] == ["SC-UC"]
    replica = replica_checksum(live, replica)
    assert page["checkpoint"]["checksum"] == feed.checksum_of(replica.items())
    # Each case pulled is in the access log, with the user and the device.
    pulls = db_session.scalars(select(AuditEntry).where(AuditEntry.action == "sync.pull")).all()
    assert {p.target for p in pulls} == {first["reference"], second["reference"]}
    assert {p.device for p in pulls} == {device.device_id}


def test_erasure_reaches_the_device_as_delete(client: FlaskClient, device: Device) -> None:
    case = create(client)
    _changes, page = pull_all(device)
    erased = erase_by_two_people(
        client,
        case["reference"],
        STAFF,
        SECOND,
    )
    assert erased.status_code == 200, erased.get_json()
    live, page = pull_all(device, page["cursor"])
    assert [(c["op"], c["reference"]) for c in live] == [("delete", case["reference"])]
    assert "case" not in live[0]
    assert page["checkpoint"] == {
        "seq": page["checkpoint"]["seq"],
        "count": 0,
        "checksum": "0" * 64,
    }
    # A new device starting empty gets no tombstone.
    fresh, _ = pull_all(device)
    assert fresh == []


def test_a_case_handed_off_is_evicted(
    app: Any, client: FlaskClient, device: Device, db_session: Session, make_office: Any
) -> None:
    case = create(client)
    _, page = pull_all(device)
    make_office("amm")
    hand_over(app, db_session, case["reference"], "amm")
    live, page = pull_all(device, page["cursor"])
    assert [(c["op"], c["reference"]) for c in live] == [("evict", case["reference"])]
    assert page["checkpoint"]["count"] == 0
    offices = set(db_session.scalars(select(FeedEntry.office_code)))
    assert offices == {OFFICE, "amm"}


def test_cursor_is_bound_to_the_device(client: FlaskClient, device: Device, signed_in: Any) -> None:
    create(client)
    _, page = pull_all(device)
    other = signed_in()
    response = other.pull(page["cursor"])
    assert response.status_code == 409
    assert response.get_json()["type"] == RESYNC
    tampered = page["cursor"][:-2] + ("AA" if not page["cursor"].endswith("AA") else "BB")
    assert device.pull(tampered).status_code == 409


def test_limit_bounds(device: Device) -> None:
    assert device.pull(limit=501).status_code == 422
    assert device.pull(limit=0).status_code == 422
    assert device.pull(limit=500).status_code == 200


def test_snapshots_are_sealed(client: FlaskClient, device: Device, db_session: Session) -> None:
    create(client, full_name="Zeynep Canary")
    pull_all(device)
    blobs = stored_ciphertexts(db_session, CaseVersion)
    assert blobs
    assert all(b"Canary" not in (blob or b"") for blob in blobs)


def test_a_device_moved_to_another_office_must_resync(
    client: FlaskClient, device: Device, db_session: Session, make_office: Any
) -> None:
    """The cursor names the office it was issued for: a device (and its user) now in
    another office cannot continue from it, and starts again with that office's cases."""
    create(client)
    _, page = pull_all(device)
    assert page["checkpoint"]["count"] == 1
    make_office("amm")
    row = db_session.get(DeviceRow, uuid.UUID(device.device_id))
    assert row is not None
    row.office_code = "amm"
    device.user.office_code = "amm"  # type: ignore[attr-defined]
    db_session.commit()
    response = device.pull(page["cursor"])
    assert response.status_code == 409
    assert response.get_json()["type"] == RESYNC
    fresh, page = pull_all(device)
    assert fresh == []
    assert page["checkpoint"]["count"] == 0


def test_a_snapshot_altered_in_the_database_is_refused(
    client: FlaskClient, device: Device, db_session: Session
) -> None:
    """A pull checks each sealed snapshot's row seal before opening it: a row altered
    outside casework answers the integrity problem, never the snapshot."""
    create(client)
    row = db_session.scalars(select(CaseVersion)).one()
    seal = bytearray(db_session.scalar(select(VERSIONS.c.row_seal).where(VERSIONS.c.id == row.id)))
    seal[-1] ^= 1
    db_session.execute(update(VERSIONS).where(VERSIONS.c.id == row.id).values(row_seal=bytes(seal)))
    db_session.commit()
    refused = device.pull(None, 100)
    assert refused.status_code == 500
    assert refused.get_json()["type"] == "urn:casework:problem:integrity-failed"
    assert "Amina" not in refused.get_data(as_text=True)
