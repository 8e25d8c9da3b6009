"""Fixtures of the hand-off tests: two offices, a case, callers, partners and a request helper."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask.testing import FlaskClient

from tests.cases import conftest as cases
from tests.cases.conftest import CASES, audit_entries, household, member
from tests.conftest import principal_headers

# The cases feature's fixtures, reused here.
as_role = cases.as_role
keyed_session = cases.keyed_session
offices = cases.offices
office_a = cases.office_a
office_b = cases.office_b
register = cases.register
worker_a = cases.worker_a
worker_b = cases.worker_b

__all__ = ["CASES", "audit_entries"]

PARTNERS = "/api/v1/partners"
HANDOFFS = "/api/v1/handoffs"
TRANSITIONS = "{case}/{reference}/transitions"


def raw(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Caller:
    headers: dict[str, str]
    user_id: str


def caller(role: str, office: str | None, user_id: str) -> Caller:
    return Caller(principal_headers(role, office, user_id), user_id)


@pytest.fixture
def supervisor_a(office_a: str) -> Caller:
    return caller("supervisor", office_a, "sup-a1")


@pytest.fixture
def supervisor_a2(office_a: str) -> Caller:
    return caller("supervisor", office_a, "sup-a2")


@pytest.fixture
def supervisor_b(office_b: str) -> Caller:
    return caller("supervisor", office_b, "sup-b1")


@pytest.fixture
def admin() -> Caller:
    return caller("admin", None, "admin-1")


class Api:
    """Small helpers over the test client that keep the case's ETag."""

    def __init__(self, client: FlaskClient, register: Callable[..., Any]) -> None:
        self.client = client
        self._register = register

    def new_case(self, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
        body = household(member(**fields)) if fields else None
        created: dict[str, Any] = self._register(headers, body)
        return created

    def etag(self, reference: str, headers: dict[str, str]) -> str:
        response = self.client.get(f"{CASES}/{reference}/consents", headers=headers)
        assert response.status_code == 200, response.get_json()
        return str(response.headers["ETag"])

    def consent(self, reference: str, headers: dict[str, str], **body: Any) -> Any:
        return self.client.post(
            f"{CASES}/{reference}/consents",
            json=body,
            headers={**headers, "If-Match": self.etag(reference, headers)},
        )

    def handoff(self, reference: str, headers: dict[str, str], **body: Any) -> Any:
        return self.client.post(
            f"{CASES}/{reference}/handoffs",
            json=body,
            headers={**headers, "If-Match": self.etag(reference, headers)},
        )

    def transition(
        self,
        reference: str,
        headers: dict[str, str],
        to: str,
        etag: str | None = None,
        **extra: Any,
    ) -> Any:
        tag = etag or self._case_etag(reference, headers)
        return self.client.post(
            f"{CASES}/{reference}/transitions",
            json={"process": "handoff", "to": to, **extra},
            headers={**headers, "If-Match": tag},
        )

    def _case_etag(self, reference: str, headers: dict[str, str]) -> str:
        """The case's ETag, from the hand-off listing (the receiver cannot read the case)."""
        items = self.client.get(HANDOFFS, headers=headers).get_json()["items"]
        versions = [i["case_version"] for i in items if i["reference"] == reference]
        return f'"v{versions[0]}"' if versions else '"v0"'


@pytest.fixture
def api(client: FlaskClient, register: Callable[..., Any]) -> Api:
    return Api(client, register)


@pytest.fixture
def partner_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


@pytest.fixture
def partner(client: FlaskClient, admin: Caller, partner_key: X25519PrivateKey) -> str:
    """A registered partner's code; its private key is ``partner_key``."""
    body = {"code": "ngo-one", "name": "NGO One", "public_key": b64(raw(partner_key.public_key()))}
    response = client.post(PARTNERS, json=body, headers=admin.headers)
    assert response.status_code == 201, response.get_json()
    return "ngo-one"


def consent_body(member_id: str, recipients: list[str], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "purpose": "referral",
        "recipients": recipients,
        "given_by": member_id,
        "given_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
        "fields": ["members.relationship", "members.sex", "members.full_name"],
    }
    body.update(extra)
    return body
