"""An update merges against the feed's sealed snapshot of the case's version (one row
opened) rather than decrypting every member: the same results, conflicts and snapshots
as decrypting, each member row's seal still checked, an altered snapshot refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any, cast

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from casework.api import jsonable
from casework.cases import service as cases
from casework.cases.models import Case, CaseMember
from casework.security.app import holder
from casework.security.case_keys import attach_keyring
from casework.sync import push
from casework.sync.models import CaseVersion, SyncConflict
from tests.cases.test_read_stored_view import _varied_households, read_both_ways
from tests.sync.signing import Device, new_mutation
from tests.sync.test_pull import STAFF, patch
from tests.sync.test_push import results

VERSIONS = CaseVersion.__table__
MEMBERS = CaseMember.__table__


def _household() -> dict[str, Any]:
    def person(**fields: Any) -> dict[str, Any]:
        return {"client_ref": str(uuid.uuid4()), **fields}

    return {
        "client_ref": str(uuid.uuid4()),
        "specific_needs": ["SC-UC"],
        "members": [
            person(
                relationship="principal_applicant",
                sex="female",
                birth_year=1990,
                full_name="Amina Merged",
                date_of_birth="1990-03-04",
                other_names=["Aminah"],
                documents=[{"type": "passport", "number": "PM7654321"}],
                phone="+962790000010",
            ),
            person(relationship="child", sex="male", birth_year=2016, full_name="Omar Merged"),
        ],
    }


def _created(device: Device, seq: int = 1) -> tuple[str, str, str]:
    """A two-person case pushed by ``device``: its reference, head's and child's ids."""
    body = _household()
    (made,) = results(device.push([new_mutation(seq, "create", body)]))
    refs = made["refs"]
    head, child = (refs[m["client_ref"]] for m in body["members"])
    return made["reference"], head, child


def _case_id(session: Session, reference: str) -> Any:
    return session.scalar(select(Case.id).where(Case.reference == reference))


def _version(session: Session, reference: str) -> Any:
    session.expire_all()
    return session.scalar(select(Case.version).where(Case.reference == reference))


def _no_decrypting(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record every call of ``stored_values`` (the decrypting read) the push makes."""
    calls: list[Any] = []
    decrypt = cases.stored_values

    def spy(case: Case) -> cases.Stored:
        calls.append(case.reference)
        return decrypt(case)

    monkeypatch.setattr(push.cases, "stored_values", spy)
    return calls


@pytest.mark.parametrize("snapshot", [True, False], ids=["snapshot", "decrypting"])
def test_an_update_merges_alike_from_the_snapshot_or_the_rows(
    app: Flask,
    client: FlaskClient,
    db_session: Session,
    statements: list[str],
    monkeypatch: pytest.MonkeyPatch,
    device: Device,
    snapshot: bool,
) -> None:
    reference, head, child = _created(device)
    # A change by someone else first: the device's edit against v1 merges with it.
    server = patch(client, reference, 1, {"members": {"change": [{"id": head, "address": "B7"}]}})
    assert server.status_code == 200, server.get_json()
    if not snapshot:  # a case whose version has no snapshot (not yet backfilled)
        db_session.execute(
            delete(VERSIONS).where(
                VERSIONS.c.case_id == _case_id(db_session, reference), VERSIONS.c.version == 2
            )
        )
    decrypted = _no_decrypting(monkeypatch)
    changes = {
        "specific_needs": ["SC-UC", "LP-RR"],
        "members": {
            "change": [
                {"id": head, "phone": "+962790000011", "address": "Device side"},
                {"id": child, "other_names": ["Omar M."], "date_of_birth": "2016-05-06"},
            ],
        },
    }
    mutation = new_mutation(2, "update", changes, reference=reference, base_version=1)
    (result,) = results(device.push([mutation]))
    assert decrypted == ([] if snapshot else [reference])
    assert result["status"] == "conflict"
    assert result["version"] == 3
    attach_keyring(db_session, holder(app).get())
    conflict = db_session.get(SyncConflict, uuid.UUID(result["conflict_id"]))
    assert conflict is not None
    assert conflict.fields == {
        "items": [{"field": f"members.{head}.address", "server": "B7", "device": "Device side"}]
    }
    read = read_both_ways(app, client, db_session, statements, monkeypatch, reference, STAFF)
    assert read["version"] == 3
    assert read["specific_needs"] == ["SC-UC", "LP-RR"]
    first, second = read["members"]
    assert (first["phone"], first["address"], first["other_names"]) == (
        "+962790000011",
        "B7",
        ["Aminah"],
    )
    assert first["date_of_birth"] == "1990-03-04"
    assert first["documents"] == [{"type": "passport", "number": "PM7654321"}]
    assert (second["other_names"], second["date_of_birth"]) == (["Omar M."], "2016-05-06")
    # A change to the view's values that changes nothing writes nothing.
    same = {"members": {"change": [{"id": child, "other_names": ["Omar M."]}]}}
    (unchanged,) = results(
        device.push([new_mutation(3, "update", same, reference=reference, base_version=3)])
    )
    assert (unchanged["status"], unchanged["version"]) == ("applied", 3)


def test_two_updates_of_a_case_in_one_request_merge_against_each_other(
    app: Flask,
    client: FlaskClient,
    db_session: Session,
    statements: list[str],
    monkeypatch: pytest.MonkeyPatch,
    device: Device,
) -> None:
    """The snapshot is of the version the case was locked at: the second update of the
    request reads the household as the first left it."""
    reference, head, child = _created(device)
    first = {"members": {"change": [{"id": head, "phone": "+962790000012"}]}}
    second = {"members": {"change": [{"id": child, "full_name": "Omar Renamed"}]}}
    answers = results(
        device.push(
            [
                new_mutation(2, "update", first, reference=reference, base_version=1),
                new_mutation(3, "update", second, reference=reference, base_version=1),
            ]
        )
    )
    assert [(a["status"], a["version"]) for a in answers] == [("applied", 2), ("applied", 3)]
    read = read_both_ways(app, client, db_session, statements, monkeypatch, reference, STAFF)
    assert [m["phone"] for m in read["members"]] == ["+962790000012", None]
    assert [m["full_name"] for m in read["members"]] == ["Amina Merged", "Omar Renamed"]


def test_an_altered_snapshot_fails_the_update(device: Device, db_session: Session) -> None:
    """The snapshot's row seal is checked as it is opened: a row altered in the database
    answers the integrity problem, never another merge view, and nothing is written."""
    reference, head, _child = _created(device)
    case_id = _case_id(db_session, reference)
    blob = db_session.scalar(select(VERSIONS.c.snapshot).where(VERSIONS.c.case_id == case_id))
    flipped = bytearray(blob)
    flipped[-1] ^= 1
    db_session.execute(
        update(VERSIONS).where(VERSIONS.c.case_id == case_id).values(snapshot=bytes(flipped))
    )
    changes = {"members": {"change": [{"id": head, "phone": "+962790000013"}]}}
    refused = device.push([new_mutation(2, "update", changes, reference=reference, base_version=1)])
    assert refused.status_code == 500
    assert refused.get_json()["type"] == "urn:casework:problem:integrity-failed"
    assert "Amina" not in refused.get_data(as_text=True)
    assert _version(db_session, reference) == 1


def test_an_older_snapshot_moved_to_the_current_version_fails_the_update(
    client: FlaskClient, device: Device, db_session: Session
) -> None:
    reference, head, _child = _created(device)
    changed = patch(client, reference, 1, {"members": {"change": [{"id": head, "address": "B8"}]}})
    assert changed.status_code == 200
    case_id = _case_id(db_session, reference)
    db_session.execute(
        delete(VERSIONS).where(VERSIONS.c.case_id == case_id, VERSIONS.c.version == 2)
    )
    db_session.execute(
        update(VERSIONS)
        .where(VERSIONS.c.case_id == case_id, VERSIONS.c.version == 1)
        .values(version=2)
    )
    changes = {"members": {"change": [{"id": head, "phone": "+962790000014"}]}}
    refused = device.push([new_mutation(2, "update", changes, reference=reference, base_version=2)])
    assert refused.status_code == 500
    assert refused.get_json()["type"] == "urn:casework:problem:integrity-failed"
    assert _version(db_session, reference) == 2


def test_a_member_row_altered_in_the_database_fails_the_update_of_another(
    device: Device, db_session: Session
) -> None:
    """Each member row's seal is still checked, the unchanged ones' included, as when
    the household was decrypted: a column put back alone fails the update."""
    reference, head, child = _created(device)
    db_session.execute(
        update(MEMBERS).where(MEMBERS.c.id == uuid.UUID(child)).values(narrative=b"put back")
    )
    changes = {"members": {"change": [{"id": head, "phone": "+962790000015"}]}}
    refused = device.push([new_mutation(2, "update", changes, reference=reference, base_version=1)])
    assert refused.status_code == 500
    assert refused.get_json()["type"] == "urn:casework:problem:integrity-failed"
    assert _version(db_session, reference) == 1


def test_an_offline_edit_sent_in_a_later_request_merges_after_the_devices_own(
    client: FlaskClient, device: Device
) -> None:
    """The device's versions of earlier requests are read for an update whose base is
    behind the case: its own first edit is not someone else's change."""
    reference, head, _child = _created(device)
    edits = [
        new_mutation(
            seq,
            "update",
            {"members": {"change": [{"id": head, "phone": phone}]}},
            reference=reference,
            base_version=1,
        )
        for seq, phone in ((2, "+962790000016"), (3, "+962790000017"))
    ]
    (first,) = results(device.push(edits[:1]))
    (second,) = results(device.push(edits[1:]))
    assert [(r["status"], r["version"]) for r in (first, second)] == [
        ("applied", 2),
        ("applied", 3),
    ]
    read = client.get(f"/api/v1/cases/{reference}", headers=STAFF).get_json()
    assert read["members"][0]["phone"] == "+962790000017"


def test_the_merge_view_from_the_snapshot_is_the_decrypted_one(
    app: Flask, client: FlaskClient, db_session: Session, office: str
) -> None:
    """What an update merges against, read from the snapshot, equals the view built by
    decrypting every member (``jsonable(case_view)``), for varied households."""
    attach_keyring(db_session, holder(app).get())
    for body in _varied_households():
        answer = client.post("/api/v1/cases", json=body, headers=STAFF)
        assert answer.status_code == 201, answer.get_json()
        db_session.expire_all()
        reference = answer.get_json()["reference"]
        (row,) = db_session.execute(push._case_query(Case.reference == reference)).all()
        batch = push._Batch(device=cast(Any, None), next_seq=1)
        case = batch.remember_locked(row)
        stored, current = push._household(db_session, batch, case)
        assert not batch.views  # taken: the snapshot was there
        decrypted = cases.stored_values(case)
        assert current == jsonable(cases.case_view(case, decrypted))
        assert stored == {
            member_id: {
                name: [] if name in ("other_names", "documents") and value is None else value
                for name, value in values.items()
            }
            for member_id, values in decrypted.items()
        }


def test_the_snapshot_after_a_removal_an_addition_and_a_change_reads_as_decrypted(
    app: Flask,
    client: FlaskClient,
    db_session: Session,
    statements: list[str],
    monkeypatch: pytest.MonkeyPatch,
    device: Device,
) -> None:
    """The view an update seals keeps the merge view's untouched members and views the
    changed and added ones again: the read from it answers what decrypting answers."""
    body = _household()
    body["members"].append(
        {
            "client_ref": str(uuid.uuid4()),
            "relationship": "sibling",
            "sex": "female",
            "birth_year": 1994,
            "full_name": "Lina Kept",
            "other_names": ["Lina K."],
        }
    )
    (made,) = results(device.push([new_mutation(1, "create", body)]))
    reference = made["reference"]
    head, child, _sibling = (made["refs"][m["client_ref"]] for m in body["members"])
    changes = {
        "members": {
            "change": [{"id": head, "narrative": "Moved to block 9."}],
            "add": [{"relationship": "spouse", "sex": "male", "birth_year": 1985,
                     "full_name": "Sami Added", "date_of_birth": "1985-01-02"}],
            "remove": [child],
        }
    }  # fmt: skip
    (applied,) = results(
        device.push([new_mutation(2, "update", changes, reference=reference, base_version=1)])
    )
    assert (applied["status"], applied["version"]) == ("applied", 2)
    read = read_both_ways(app, client, db_session, statements, monkeypatch, reference, STAFF)
    assert [m["full_name"] for m in read["members"]] == ["Amina Merged", "Lina Kept", "Sami Added"]
    assert read["members"][0]["narrative"] == "Moved to block 9."
    assert read["members"][1]["other_names"] == ["Lina K."]
    assert read["members"][2]["date_of_birth"] == "1985-01-02"


def test_a_body_mac_is_the_hmac_of_the_canonical_json() -> None:
    """Results stored by earlier releases are matched by this MAC: its bytes never change."""
    mutation = {
        "mutation_id": uuid.UUID("6f1c2c2e-8d3a-4b8e-9a53-1d6c1f0e2a10"),
        "device_seq": 7,
        "op": "update",
        "reference": "ABC-123",
        "base_version": 2,
        "changes": {"members": {"change": [{"id": "x", "full_name": "Ünïcödé 中文 🙂"}]}},
    }
    secret = b"k" * 32
    canonical = json.dumps(jsonable(mutation), sort_keys=True, separators=(",", ":"))
    expected = hmac.new(secret, canonical.encode(), hashlib.sha256).digest()
    assert push.body_mac(mutation, secret) == expected
