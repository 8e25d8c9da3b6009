"""The snapshot a sync push seals (from the values it wrote, not decrypted again) serves
the case read: the read must answer what decrypting every member answers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.cases.test_read_stored_view import read_both_ways
from tests.sync.signing import Device, new_mutation
from tests.sync.test_pull import STAFF
from tests.sync.test_push import results


def _person(**fields: Any) -> dict[str, Any]:
    return {"client_ref": str(uuid.uuid4()), **fields}


def test_pushed_creates_and_updates_read_from_their_snapshots_as_decrypted(
    app: Flask,
    client: FlaskClient,
    db_session: Session,
    statements: list[str],
    monkeypatch: pytest.MonkeyPatch,
    device: Device,
) -> None:
    body = {
        "client_ref": str(uuid.uuid4()),
        "specific_needs": ["SC-UC"],
        "members": [
            _person(
                relationship="principal_applicant",
                sex="female",
                birth_year=1990,
                full_name="Amina Pushed",
                date_of_birth="1990-03-04",
                other_names=["Aminah"],
                documents=[{"type": "passport", "number": "PX1234567"}],
                narrative="Met at the distribution point.",
            ),
            _person(
                relationship="child",
                sex="male",
                birth_year=2016,
                full_name="Omar Pushed",
                birth_registration="not_registered",
            ),
        ],
    }
    (created,) = results(device.push([new_mutation(1, "create", body)]))
    reference = created["reference"]
    first = read_both_ways(app, client, db_session, statements, monkeypatch, reference, STAFF)
    assert first["members"][0]["date_of_birth"] == "1990-03-04"
    head = created["refs"][body["members"][0]["client_ref"]]
    changes = {
        "members": {
            "change": [{"id": head, "phone": "+962790000001", "other_names": []}],
            "add": [
                {
                    "relationship": "spouse",
                    "sex": "male",
                    "birth_year": 1985,
                    "full_name": "Sami P.",
                }
            ],
        }
    }
    update = new_mutation(2, "update", changes, reference=reference, base_version=1)
    (applied,) = results(device.push([update]))
    assert applied["status"] == "applied", applied["errors"]
    second = read_both_ways(app, client, db_session, statements, monkeypatch, reference, STAFF)
    assert second["version"] == 2
    assert [m["full_name"] for m in second["members"]][-1] == "Sami P."
    assert second["members"][0]["phone"] == "+962790000001"
