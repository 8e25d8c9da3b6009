"""Fixtures of the vetting tests: two offices, vetting staff in each, cases at stage vetting."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from casework.cases.codes import Stage
from casework.cases.models import Case
from casework.security.app import holder
from casework.security.case_keys import attach_keyring
from tests.cases.conftest import CASES, audit_entries, household, member
from tests.conftest import principal_headers

CANARY = "CANARY-7f3a-vetting-secret"


def interviews_url(reference: str) -> str:
    return f"{CASES}/{reference}/interviews"


def checks_url(reference: str, check: str | None = None) -> str:
    return f"{CASES}/{reference}/checks" + (f"/{check}" if check else "")


def audit_fields(entry: Any) -> list[str]:
    fields: list[str] = json.loads(entry.fields)
    return fields


@pytest.fixture
def offices(make_office: Any) -> tuple[str, str, str]:
    return (
        make_office("amm-01", "Amman", "JOR"),
        make_office("irb-02", "Irbid", "JOR"),
        make_office("zrq-03", "Zarqa", "JOR"),
    )


@pytest.fixture
def office_a(offices: tuple[str, str, str]) -> str:
    return offices[0]


@pytest.fixture
def office_b(offices: tuple[str, str, str]) -> str:
    return offices[1]


@pytest.fixture
def office_c(offices: tuple[str, str, str]) -> str:
    return offices[2]


@pytest.fixture
def officer_a(office_a: str) -> dict[str, str]:
    return principal_headers("vetting_officer", office_a, "officer-a")


@pytest.fixture
def officer_a2(office_a: str) -> dict[str, str]:
    return principal_headers("vetting_officer", office_a, "officer-a2")


@pytest.fixture
def officer_b(office_b: str) -> dict[str, str]:
    return principal_headers("vetting_officer", office_b, "officer-b")


@pytest.fixture
def supervisor_a(office_a: str) -> dict[str, str]:
    return principal_headers("supervisor", office_a, "supervisor-a")


@pytest.fixture
def worker_a(office_a: str) -> dict[str, str]:
    return principal_headers("caseworker", office_a, "worker-a")


@pytest.fixture
def worker_b(office_b: str) -> dict[str, str]:
    return principal_headers("caseworker", office_b, "worker-b")


@pytest.fixture
def keyed_session(app: Flask, db_session: Session) -> Session:
    attach_keyring(db_session, holder(app).get())
    return db_session


@pytest.fixture
def register(client: FlaskClient) -> Callable[..., dict[str, Any]]:
    """``register(headers, body=None)`` -> the new case (asserts 201)."""

    def post(headers: dict[str, str], body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = client.post(CASES, json=body or household(member()), headers=headers)
        assert response.status_code == 201, response.get_json()
        answer: dict[str, Any] = response.get_json()
        return answer

    return post


def to_stage(session: Session, reference: str, stage: Stage) -> None:
    """Put a case at ``stage`` directly (the workflow's own tests cover the transitions)."""
    session.execute(update(Case).where(Case.reference == reference).values(stage=stage.value))
    session.flush()


@pytest.fixture
def vetting_case(
    db_session: Session, register: Callable[..., dict[str, Any]], worker_a: dict[str, str]
) -> Callable[..., dict[str, Any]]:
    """``vetting_case(headers=worker_a, body=None)`` -> a case of office A at stage vetting."""

    def make(headers: dict[str, str] | None = None, body: Any = None) -> dict[str, Any]:
        case = register(
            headers or worker_a,
            body
            or household(
                member(), member(relationship="spouse", full_name="Second Person", sex="male")
            ),
        )
        to_stage(db_session, case["reference"], Stage.VETTING)
        return case

    return make


@pytest.fixture
def etag(client: FlaskClient) -> Callable[[str, dict[str, str]], str]:
    """The case's current ETag, read through the check list."""

    def read(reference: str, headers: dict[str, str]) -> str:
        response = client.get(checks_url(reference), headers=headers)
        assert response.status_code == 200, response.get_json()
        return str(response.headers["ETag"])

    return read


__all__ = ["CANARY", "audit_entries", "audit_fields", "checks_url", "interviews_url"]
