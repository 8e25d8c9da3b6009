"""Fixtures of the cases API tests: two offices, callers in each, a household factory."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.audit.models import AuditEntry
from casework.security.app import holder
from casework.security.case_keys import attach_keyring
from tests.conftest import principal_headers

CASES = "/api/v1/cases"
_serial = itertools.count(1)


def unique(prefix: str) -> str:
    """A distinct token per call, so cases of one test never match another's by accident."""
    return f"{prefix}{next(_serial):05d}"


def member(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "relationship": "principal_applicant",
        "sex": "female",
        "birth_year": 1990,
        "full_name": f"Amina {unique('Testname')}",
        "country_of_origin": "SYR",
    }
    body.update(fields)
    return body


def household(*members: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"members": list(members) or [member()]}
    body.update(fields)
    return body


@pytest.fixture
def offices(make_office: Any) -> tuple[str, str]:
    return make_office("amm-01", "Amman"), make_office("irb-02", "Irbid", "JOR")


@pytest.fixture
def office_a(offices: tuple[str, str]) -> str:
    return offices[0]


@pytest.fixture
def office_b(offices: tuple[str, str]) -> str:
    return offices[1]


@pytest.fixture
def as_role() -> Callable[..., dict[str, str]]:
    """``as_role(role, office)`` -> headers acting as that role in that office."""
    return principal_headers


@pytest.fixture
def worker_a(office_a: str) -> dict[str, str]:
    return principal_headers("caseworker", office_a, "worker-a")


@pytest.fixture
def worker_b(office_b: str) -> dict[str, str]:
    return principal_headers("caseworker", office_b, "worker-b")


@pytest.fixture
def register(client: FlaskClient) -> Callable[..., Any]:
    """``register(headers, body)`` -> the 201 response's JSON (asserts the status)."""

    def post(headers: dict[str, str], body: dict[str, Any] | None = None) -> Any:
        response = client.post(CASES, json=body or household(), headers=headers)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    return post


@pytest.fixture
def keyed_session(app: Flask, db_session: Session) -> Session:
    """The test's session with the service keyring attached, to read encrypted attributes."""
    attach_keyring(db_session, holder(app).get())
    return db_session


def audit_entries(session: Session, target: str | None = None, action: str | None = None) -> Any:
    query = select(AuditEntry).order_by(AuditEntry.seq)
    if target is not None:
        query = query.where(AuditEntry.target == target)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    return session.scalars(query).all()
