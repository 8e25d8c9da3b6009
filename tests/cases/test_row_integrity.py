"""A field rolled back alone in the database fails the read: 500 integrity-failed, logged."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from casework.cases.models import Case, CaseMember
from casework.sync.models import CaseVersion
from tests.cases.conftest import CASES, audit_entries, household, member

MEMBERS = CaseMember.__table__


def test_a_rolled_back_field_fails_with_a_clear_error_and_an_access_log_entry(
    client: FlaskClient, db_session: Session, worker_a: dict[str, str], register: Any
) -> None:
    created = register(worker_a, household(member(narrative="First account")))
    ref = created["reference"]
    url = f"{CASES}/{ref}"
    case_id = db_session.scalars(select(Case.id).where(Case.reference == ref)).one()
    old = db_session.execute(
        select(MEMBERS.c.id, MEMBERS.c.narrative).where(MEMBERS.c.case_id == case_id)
    ).one()
    head = created["members"][0]["id"]
    change = {"members": {"change": [{"id": head, "narrative": "Corrected account"}]}}
    changed = client.patch(url, json=change, headers={**worker_a, "If-Match": '"v1"'})
    assert changed.status_code == 200
    assert client.get(url, headers=worker_a).get_json()["members"][0]["narrative"] == (
        "Corrected account"
    )

    db_session.execute(
        update(MEMBERS).where(MEMBERS.c.id == old.id).values(narrative=old.narrative)
    )
    # Without the feed's snapshot of this version the read decrypts the members (with it,
    # it answers the sealed snapshot and opens no member row: test_read_stored_view.py).
    db_session.execute(delete(CaseVersion).where(CaseVersion.case_id == case_id))
    db_session.expire_all()
    refused = client.get(url, headers=worker_a)
    assert refused.status_code == 500
    problem = refused.get_json()
    assert problem["type"] == "urn:casework:problem:integrity-failed"
    assert "First account" not in refused.get_data(as_text=True)
    (entry,) = audit_entries(db_session, ref, "case.integrity_failed")
    assert entry.outcome == "failure"
    assert json.loads(entry.fields)[0].startswith("case_members.")


def test_a_rolled_back_needs_list_fails_the_list_page_and_the_search(
    client: FlaskClient, db_session: Session, worker_a: dict[str, str], register: Any
) -> None:
    """The list and the search read their rows as columns, not objects: the same seal check."""
    cases = Case.__table__
    document = "RB-424242"
    created = register(
        worker_a,
        household(
            member(documents=[{"type": "passport", "number": document}]), specific_needs=["LP-RR"]
        ),
    )
    ref = created["reference"]
    old = db_session.execute(
        select(cases.c.id, cases.c.specific_needs).where(cases.c.reference == ref)
    ).one()
    changed = client.patch(
        f"{CASES}/{ref}",
        json={"specific_needs": ["SC-UC"]},
        headers={**worker_a, "If-Match": '"v1"'},
    )
    assert changed.status_code == 200
    listed = client.get(CASES, headers=worker_a).get_json()["items"]
    assert [item["specific_needs"] for item in listed if item["reference"] == ref] == [["SC-UC"]]

    db_session.execute(
        update(cases).where(cases.c.id == old.id).values(specific_needs=old.specific_needs)
    )
    db_session.expire_all()
    refused = client.get(CASES, headers=worker_a)
    assert refused.status_code == 500
    assert refused.get_json()["type"] == "urn:casework:problem:integrity-failed"
    searched = client.post(f"{CASES}/search", json={"document_number": document}, headers=worker_a)
    assert searched.status_code == 500
    assert searched.get_json()["type"] == "urn:casework:problem:integrity-failed"
