"""The case read takes its members from the feed's sealed snapshot of the case's current
version: it must answer byte for byte what the read that decrypts every member answers
(same ETag, same access-log entry), fall back to decrypting when there is no such
snapshot (or one of another shape), and fail like any altered row when the snapshot was
altered, never silently."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from casework.authz.access import require_principal
from casework.authz.permissions import Permission
from casework.cases import service
from casework.cases.models import Case, CaseMember
from casework.sync.models import CaseVersion
from tests.cases.conftest import CASES, audit_entries, household, member, unique
from tests.conftest import principal_headers

VERSIONS = CaseVersion.__table__
SUPERVISOR_OFFICE = "amm-01"


def _varied_households() -> list[dict[str, Any]]:
    newborn = member(relationship="child", sex="male", unnamed=True, birth_year=2026)
    del newborn["full_name"]
    return [
        household(
            member(
                documents=[
                    {"type": "passport", "number": unique("P-")},
                    {"type": "unhcr_registration", "number": unique("U-")},
                ],
                phone="+962 7 9999 0000",
                address="Block 4\nShelter 12 — «east»",
                narrative="Arrived in 2024. Ünïcödé, 中文, emoji 🙂.",
                date_of_birth="1990-03-04",
                other_names=["Aminah", "Amina B."],
            ),
            member(relationship="spouse", sex="male", full_name="Sami Spouse", birth_year=1988),
            member(
                relationship="child",
                sex="male",
                birth_year=2016,
                full_name="Omar Child",
                mother=0,
                birth_registration="not_registered",
                nationality_status="at_risk_of_statelessness",
                registration_risk={
                    "exposes_parent": True,
                    "decision": "defer",
                    "reason": "Exposure.",
                },
            ),
            specific_needs=["SC-UC", "LP-RR"],
        ),
        household(member(), newborn),
        household(member(full_name=unique("Solo "), sex="male", birth_year=1975)),
    ]


def read_both_ways(
    app: Flask,
    client: FlaskClient,
    db_session: Session,
    statements: list[str],
    monkeypatch: pytest.MonkeyPatch,
    reference: str,
    headers: dict[str, str],
) -> Any:
    """Read the case from its snapshot, then with the snapshots unregistered (every member
    decrypted, as before they were used); assert both answers and log entries are equal."""
    url = f"{CASES}/{reference}"
    statements.clear()
    stored = client.get(url, headers=headers)
    assert stored.status_code == 200, stored.get_json()
    assert not [s for s in statements if "FROM case_members" in s], "members were loaded"
    with monkeypatch.context() as patched:
        patched.delitem(app.extensions, service._STORED_VIEWS)
        statements.clear()
        decrypted = client.get(url, headers=headers)
    assert [s for s in statements if "case_members" in s]
    assert stored.get_data() == decrypted.get_data()
    assert stored.headers["ETag"] == decrypted.headers["ETag"]
    *_, first, second = audit_entries(db_session, reference, "case.read")
    assert json.loads(first.fields) == json.loads(second.fields)
    return stored.get_json()


def _first_transition(client: FlaskClient, reference: str, headers: dict[str, str]) -> bool:
    """Take one transition the caller is offered (a write that changes no member but the
    stage: the read shows the new one from the case row, the members from the snapshot)."""
    read = client.get(f"{CASES}/{reference}", headers=headers)
    for offer in read.get_json()["allowed_transitions"]:
        body = {"process": offer["process"], "to": offer["to"]}
        answer = client.post(
            f"{CASES}/{reference}/transitions",
            json=body,
            headers={**headers, "If-Match": read.headers["ETag"]},
        )
        if answer.status_code == 200:
            return True
    return False


@pytest.mark.parametrize("role", ["caseworker", "supervisor"])
def test_the_read_from_the_snapshot_answers_what_decrypting_answers(
    app: Flask,
    client: FlaskClient,
    db_session: Session,
    statements: list[str],
    monkeypatch: pytest.MonkeyPatch,
    office_a: str,
    worker_a: dict[str, str],
    register: Any,
    role: str,
) -> None:
    headers = principal_headers(role, office_a)
    for body in _varied_households():
        created = register(worker_a, body)
        reference = created["reference"]
        first = read_both_ways(app, client, db_session, statements, monkeypatch, reference, headers)
        assert first["members"] == created["members"]
        # A change of a field, an added and a removed member: each version has its snapshot.
        head = created["members"][0]["id"]
        changes: dict[str, Any] = {
            "members": {
                "change": [{"id": head, "other_names": ["Changed"], "phone": None}],
                "add": [member(relationship="sibling", full_name=unique("Added "))],
            },
            "specific_needs": ["LP-RR"],
        }
        if len(created["members"]) > 1:
            changes["members"]["remove"] = [created["members"][-1]["id"]]
        changed = client.patch(
            f"{CASES}/{reference}", json=changes, headers={**worker_a, "If-Match": '"v1"'}
        )
        assert changed.status_code == 200, changed.get_json()
        second = read_both_ways(
            app, client, db_session, statements, monkeypatch, reference, headers
        )
        assert second["version"] == 2
        assert second["members"][0]["other_names"] == ["Changed"]
        assert second["members"] == changed.get_json()["members"]
        assert _first_transition(client, reference, principal_headers("supervisor", office_a))
        third = read_both_ways(app, client, db_session, statements, monkeypatch, reference, headers)
        assert third["version"] == 3


def _case_id(session: Session, reference: str) -> Any:
    return session.scalar(select(Case.id).where(Case.reference == reference))


def test_a_case_without_a_snapshot_of_its_version_is_read_by_decrypting(
    app: Flask,
    client: FlaskClient,
    db_session: Session,
    statements: list[str],
    worker_a: dict[str, str],
    register: Any,
) -> None:
    created = register(worker_a)
    reference = created["reference"]
    url = f"{CASES}/{reference}"
    before = client.get(url, headers=worker_a)
    db_session.execute(
        delete(CaseVersion).where(CaseVersion.case_id == _case_id(db_session, reference))
    )
    db_session.expire_all()
    statements.clear()
    after = client.get(url, headers=worker_a)
    assert after.status_code == 200
    assert [s for s in statements if "case_members" in s]
    assert after.get_data() == before.get_data()


def test_a_snapshot_of_another_shape_is_not_used(
    client: FlaskClient,
    keyed_session: Session,
    worker_a: dict[str, str],
    register: Any,
) -> None:
    """A snapshot sealed by a release whose member view differed (here: one field fewer)
    is genuine but not today's view: the read decrypts the members instead."""
    created = register(worker_a)
    reference = created["reference"]
    url = f"{CASES}/{reference}"
    before = client.get(url, headers=worker_a)
    row = keyed_session.scalars(
        select(CaseVersion).where(CaseVersion.case_id == _case_id(keyed_session, reference))
    ).one()
    snapshot = row.snapshot
    assert snapshot is not None
    for person in snapshot["members"]:
        del person["narrative"]
    row.snapshot = snapshot
    keyed_session.flush()  # sealed anew, under the case's key: a genuine row
    keyed_session.expire_all()
    after = client.get(url, headers=worker_a)
    assert after.status_code == 200
    assert after.get_data() == before.get_data()
    assert "narrative" in after.get_json()["members"][0]


def _assert_integrity_failed(answer: Any, session: Session, reference: str) -> None:
    assert answer.status_code == 500
    assert answer.get_json()["type"] == "urn:casework:problem:integrity-failed"
    (entry,) = audit_entries(session, reference, "case.integrity_failed")
    assert entry.outcome == "failure"
    assert json.loads(entry.fields) == ["sync_case_versions.snapshot"]


def test_an_altered_snapshot_fails_the_read(
    client: FlaskClient, db_session: Session, worker_a: dict[str, str], register: Any
) -> None:
    created = register(worker_a, household(member(narrative="Genuine account")))
    reference = created["reference"]
    case_id = _case_id(db_session, reference)
    blob = db_session.scalar(select(VERSIONS.c.snapshot).where(VERSIONS.c.case_id == case_id))
    assert blob
    flipped = bytearray(blob)
    flipped[-1] ^= 1
    db_session.execute(
        update(VERSIONS).where(VERSIONS.c.case_id == case_id).values(snapshot=bytes(flipped))
    )
    db_session.expire_all()
    refused = client.get(f"{CASES}/{reference}", headers=worker_a)
    _assert_integrity_failed(refused, db_session, reference)


def test_an_older_snapshot_moved_to_the_current_version_fails_the_read(
    client: FlaskClient, db_session: Session, worker_a: dict[str, str], register: Any
) -> None:
    """The version column is plain: a snapshot renumbered outside casework names its true
    version inside the sealed view, and the read refuses it rather than show old values."""
    created = register(worker_a, household(member(narrative="First account")))
    reference = created["reference"]
    head = created["members"][0]["id"]
    change = {"members": {"change": [{"id": head, "narrative": "Corrected account"}]}}
    url = f"{CASES}/{reference}"
    assert (
        client.patch(url, json=change, headers={**worker_a, "If-Match": '"v1"'}).status_code == 200
    )
    case_id = _case_id(db_session, reference)
    db_session.execute(
        delete(VERSIONS).where(VERSIONS.c.case_id == case_id, VERSIONS.c.version == 2)
    )
    db_session.execute(
        update(VERSIONS)
        .where(VERSIONS.c.case_id == case_id, VERSIONS.c.version == 1)
        .values(version=2)
    )
    db_session.expire_all()
    refused = client.get(url, headers=worker_a)
    assert "First account" not in refused.get_data(as_text=True)
    _assert_integrity_failed(refused, db_session, reference)


def test_a_member_row_rolled_back_alone_is_not_what_the_read_answers(
    client: FlaskClient, db_session: Session, worker_a: dict[str, str], register: Any
) -> None:
    """The read answers the sealed snapshot of the version, opening no member row: a member
    field put back to an older ciphertext is not shown (the reads that decrypt the member,
    a change or an erasure among them, refuse it: test_row_integrity.py)."""
    created = register(worker_a, household(member(narrative="First account")))
    reference = created["reference"]
    head = created["members"][0]["id"]
    members = CaseMember.__table__
    old = db_session.execute(
        select(members.c.id, members.c.narrative).where(members.c.id == uuid.UUID(head))
    ).one()
    change = {"members": {"change": [{"id": head, "narrative": "Corrected account"}]}}
    url = f"{CASES}/{reference}"
    assert (
        client.patch(url, json=change, headers={**worker_a, "If-Match": '"v1"'}).status_code == 200
    )
    db_session.execute(
        update(members).where(members.c.id == old.id).values(narrative=old.narrative)
    )
    db_session.expire_all()
    answer = client.get(url, headers=worker_a)
    assert answer.status_code == 200
    assert answer.get_json()["members"][0]["narrative"] == "Corrected account"


def test_a_case_changed_since_its_load_is_read_by_decrypting(
    app: Flask,
    keyed_session: Session,
    office_a: str,
    worker_a: dict[str, str],
    register: Any,
) -> None:
    """The snapshot the load brought is of the version loaded: once the request changed the
    case (flushed, so nothing is pending), the read decrypts the members rather than
    answer that snapshot or take it for an altered row."""
    reference = register(worker_a)["reference"]
    with app.test_request_context(headers=worker_a):
        principal = require_principal()
        case = service.load_case(
            keyed_session, principal, reference, Permission.CASES_READ, for_read=True
        )
        case.members[0].narrative = "Changed in this request"
        case.version += 1
        keyed_session.flush()
        view = service.read_case(keyed_session, case, principal, json_ready=True)
    assert view["version"] == 2
    assert view["members"][0]["narrative"] == "Changed in this request"
