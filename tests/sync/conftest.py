"""Sync fixtures: an office, an enrolled device, a caseworker signed in on it."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.auth.helpers import TEST_PASSWORD, fresh_code
from tests.conftest import principal_headers
from tests.sync.signing import Device, enrol

OFFICE = "kbl"
ADMIN = principal_headers("admin")


def household(**member: Any) -> dict[str, Any]:
    """A one-person intake body."""
    person = {
        "relationship": "principal_applicant",
        "sex": "female",
        "birth_year": 1990,
        "full_name": "Amina Test",
        **member,
    }
    return {"members": [person]}


@pytest.fixture
def office(make_office: Any) -> str:
    return str(make_office(OFFICE))


@pytest.fixture
def enrolment_code(client: FlaskClient, office: str) -> Any:
    def issue(office_code: str = office, label: str = "Laptop 1") -> str:
        response = client.post(
            "/api/v1/devices/enrolment-codes",
            json={"office": office_code, "label": label},
            headers=ADMIN,
        )
        assert response.status_code == 201, response.get_json()
        return str(response.get_json()["code"])

    return issue


@pytest.fixture
def new_device(client: FlaskClient, enrolment_code: Any) -> Any:
    def make(office_code: str = OFFICE) -> Device:
        return enrol(client, enrolment_code(office_code))

    return make


@pytest.fixture
def signed_in(app: Flask, db_session: Session, make_user: Any, new_device: Any) -> Any:
    """``signed_in(role="caseworker", office=OFFICE)`` -> a device with a signed-in user."""

    def make(
        role: str = "caseworker", office_code: str = OFFICE, device: Device | None = None
    ) -> Device:
        user = make_user(role, office_code)
        device = device or new_device(office_code)
        totp = fresh_code(app, db_session, user) if user.mfa_enabled_at else None
        response = device.login(user.username, TEST_PASSWORD, totp)
        assert response.status_code == 200, response.get_json()
        device.user = user  # type: ignore[attr-defined]
        return device

    return make


@pytest.fixture
def device(office: str, signed_in: Any) -> Device:
    return signed_in()
