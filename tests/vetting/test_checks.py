"""Vetting checks: one result per check, statuses per check, medical findings behind
medical:read, sealed at rest, audited by field name."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from casework.authz import permissions
from casework.authz.permissions import Permission
from casework.cases.codes import Stage
from casework.workflow.codes import CheckType
from tests.conftest import principal_headers
from tests.vetting.conftest import CANARY, audit_entries, audit_fields, checks_url, to_stage

RESULTS = {
    "identity_verification": {"status": "verified", "findings": "Documents match."},
    "security_screening": {"status": "cleared", "findings": "No hits."},
    "medical_examination": {"status": "completed", "fit_to_travel": True, "findings": "TB neg."},
    "credibility_assessment": {"status": "partially_credible", "findings": "Dates differ."},
}


def put(
    client: FlaskClient, reference: str, check: str, body: dict[str, Any], headers: dict[str, str]
) -> Any:
    return client.put(checks_url(reference, check), json=body, headers=headers)


def with_etag(client: FlaskClient, reference: str, headers: dict[str, str]) -> dict[str, str]:
    etag = client.get(checks_url(reference), headers=headers).headers["ETag"]
    return {**headers, "If-Match": etag}


def by_check(response: Any) -> dict[str, dict[str, Any]]:
    return {item["check"]: item for item in response.get_json()["items"]}


def test_checks_start_pending(
    client: FlaskClient, vetting_case: Any, officer_a: dict[str, str]
) -> None:
    case = vetting_case()
    response = client.get(checks_url(case["reference"]), headers=officer_a)
    assert response.status_code == 200
    assert response.headers["ETag"] == '"v1"'
    items = response.get_json()["items"]
    assert [i["check"] for i in items] == [c.value for c in CheckType]
    assert all(i["status"] == "pending" and i["updated_at"] is None for i in items)


def test_record_every_check(
    client: FlaskClient, vetting_case: Any, officer_a: dict[str, str]
) -> None:
    case = vetting_case()
    reference = case["reference"]
    for version, (check, body) in enumerate(RESULTS.items(), start=1):
        response = put(client, reference, check, body, {**officer_a, "If-Match": f'"v{version}"'})
        assert response.status_code == 200, response.get_json()
        assert response.headers["ETag"] == f'"v{version + 1}"'
        answer = response.get_json()
        assert answer["status"] == body["status"]
        assert answer["findings"] == body["findings"]
        assert answer["redacted"] is False
    items = by_check(client.get(checks_url(reference), headers=officer_a))
    assert items["medical_examination"]["fit_to_travel"] is True
    assert items["credibility_assessment"]["status"] == "partially_credible"
    assert items["identity_verification"]["fit_to_travel"] is None


def test_if_match_is_required(
    client: FlaskClient, vetting_case: Any, officer_a: dict[str, str]
) -> None:
    reference = vetting_case()["reference"]
    body = RESULTS["security_screening"]
    assert put(client, reference, "security_screening", body, officer_a).status_code == 428
    stale = put(client, reference, "security_screening", body, {**officer_a, "If-Match": '"v9"'})
    assert stale.status_code == 412


@pytest.mark.parametrize(
    ("check", "body", "field"),
    [
        ("security_screening", {"status": "verified"}, "status"),
        ("identity_verification", {"status": "cleared"}, "status"),
        ("credibility_assessment", {"status": "completed"}, "status"),
        ("medical_examination", {"status": "completed"}, "fit_to_travel"),
        ("medical_examination", {"status": "pending", "fit_to_travel": True}, "fit_to_travel"),
        ("security_screening", {"status": "cleared", "fit_to_travel": True}, "fit_to_travel"),
        ("security_screening", {"status": "cleared", "fit_to_travel": "yes"}, "fit_to_travel"),
        ("security_screening", {"status": "cleared", "findings": ""}, "findings"),
        ("security_screening", {"status": "cleared", "check": "x"}, "check"),
        ("security_screening", {}, "status"),
    ],
)
def test_invalid_results_are_refused(
    client: FlaskClient,
    vetting_case: Any,
    officer_a: dict[str, str],
    check: str,
    body: dict[str, Any],
    field: str,
) -> None:
    reference = vetting_case()["reference"]
    response = put(client, reference, check, body, {**officer_a, "If-Match": '"v1"'})
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]["json"]


def test_an_unknown_check_is_not_found(
    client: FlaskClient, vetting_case: Any, officer_a: dict[str, str]
) -> None:
    reference = vetting_case()["reference"]
    response = put(
        client, reference, "lie_detector", {"status": "x"}, {**officer_a, "If-Match": '"v1"'}
    )
    assert response.status_code == 404


def test_an_unchanged_result_keeps_the_version(
    client: FlaskClient, vetting_case: Any, officer_a: dict[str, str]
) -> None:
    reference = vetting_case()["reference"]
    body = RESULTS["security_screening"]
    first = put(client, reference, "security_screening", body, {**officer_a, "If-Match": '"v1"'})
    again = put(client, reference, "security_screening", body, {**officer_a, "If-Match": '"v2"'})
    assert first.headers["ETag"] == again.headers["ETag"] == '"v2"'


def test_checks_need_the_vetting_stage(
    client: FlaskClient, db_session: Session, vetting_case: Any, officer_a: dict[str, str]
) -> None:
    reference = vetting_case()["reference"]
    to_stage(db_session, reference, Stage.RESETTLEMENT)
    body = {"status": "flagged"}
    response = put(client, reference, "security_screening", body, {**officer_a, "If-Match": '"v1"'})
    assert response.status_code == 409
    assert response.get_json()["type"] == "urn:casework:problem:case-not-in-vetting"


def test_medical_and_screening_findings_need_medical_read(
    client: FlaskClient,
    db_session: Session,
    vetting_case: Any,
    officer_a: dict[str, str],
    worker_a: dict[str, str],
    supervisor_a: dict[str, str],
) -> None:
    reference = vetting_case()["reference"]
    for check, body in RESULTS.items():
        put(client, reference, check, {**body, "findings": f"{CANARY} {check}"},
            with_etag(client, reference, officer_a))  # fmt: skip

    seen = by_check(client.get(checks_url(reference), headers=worker_a))  # cases:read only
    for check in ("medical_examination", "security_screening"):
        assert seen[check]["findings"] is None
        assert seen[check]["fit_to_travel"] is None
        assert seen[check]["redacted"] is True
    assert seen["medical_examination"]["status"] == "completed"  # the status is workflow data
    assert seen["identity_verification"]["findings"] == f"{CANARY} identity_verification"
    read = audit_entries(db_session, reference, "case.read")[-1]
    assert read.role == "caseworker"
    assert not any(f.startswith("vetting.checks.medical_examination.f") for f in audit_fields(read))
    assert "vetting.checks.medical_examination.status" in audit_fields(read)

    for headers in (officer_a, supervisor_a):
        full = by_check(client.get(checks_url(reference), headers=headers))
        assert full["medical_examination"]["findings"] == f"{CANARY} medical_examination"
        assert full["medical_examination"]["fit_to_travel"] is True
        assert full["security_screening"]["redacted"] is False
    read = audit_entries(db_session, reference, "case.read")[-1]
    assert "vetting.checks.medical_examination.findings" in audit_fields(read)
    assert "vetting.checks.medical_examination.fit_to_travel" in audit_fields(read)


def test_writing_a_medical_result_needs_medical_read(
    client: FlaskClient,
    db_session: Session,
    vetting_case: Any,
    office_a: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No role holds vetting:conduct without medical:read today; the rule must not rely on it."""
    limited = permissions.ROLE_PERMISSIONS["vetting_officer"] - {Permission.MEDICAL_READ}
    monkeypatch.setitem(permissions.ROLE_PERMISSIONS, "screener", limited)
    screener = principal_headers("screener", office_a, "screener-a")
    reference = vetting_case()["reference"]
    medical = put(client, reference, "medical_examination", RESULTS["medical_examination"],
                  {**screener, "If-Match": '"v1"'})  # fmt: skip
    assert medical.status_code == 403
    assert audit_entries(db_session, reference, "authz.denied")
    screening = put(client, reference, "security_screening", RESULTS["security_screening"],
                    {**screener, "If-Match": '"v1"'})  # fmt: skip
    assert screening.status_code == 200
    assert screening.get_json()["findings"] is None  # written, but not readable back
    assert screening.get_json()["redacted"] is True


def test_scope_and_permissions(
    client: FlaskClient,
    vetting_case: Any,
    officer_b: dict[str, str],
    worker_a: dict[str, str],
    worker_b: dict[str, str],
) -> None:
    reference = vetting_case()["reference"]
    v1 = {"If-Match": '"v1"'}
    body = RESULTS["security_screening"]
    assert client.get(checks_url(reference), headers=officer_b).status_code == 404
    assert client.get(checks_url(reference), headers=worker_b).status_code == 404
    assert (
        put(client, reference, "security_screening", body, {**officer_b, **v1}).status_code == 404
    )
    assert put(client, reference, "security_screening", body, {**worker_a, **v1}).status_code == 403
    auditor = principal_headers("auditor")
    assert client.get(checks_url(reference), headers=auditor).status_code == 403


def test_writes_are_audited_by_field_name(
    client: FlaskClient, db_session: Session, vetting_case: Any, officer_a: dict[str, str]
) -> None:
    reference = vetting_case()["reference"]
    body = {"status": "completed", "fit_to_travel": False, "findings": CANARY}
    put(client, reference, "medical_examination", body, {**officer_a, "If-Match": '"v1"'})
    update = audit_entries(db_session, reference, "case.update")[-1]
    assert audit_fields(update) == [
        "vetting.checks.medical_examination.findings",
        "vetting.checks.medical_examination.fit_to_travel",
        "vetting.checks.medical_examination.status",
    ]
    put(client, reference, "medical_examination", {**body, "findings": None},
        {**officer_a, "If-Match": '"v2"'})  # fmt: skip
    update = audit_entries(db_session, reference, "case.update")[-1]
    assert audit_fields(update) == ["vetting.checks.medical_examination.findings"]
    for entry in audit_entries(db_session, reference):
        assert CANARY not in (entry.fields or "")
        assert "completed" not in (entry.fields or "")


def test_statuses_and_findings_are_sealed_at_rest(
    client: FlaskClient, db_session: Session, vetting_case: Any, officer_a: dict[str, str]
) -> None:
    reference = vetting_case()["reference"]
    body = {"status": "flagged", "findings": CANARY}
    put(client, reference, "security_screening", body, {**officer_a, "If-Match": '"v1"'})
    rows = db_session.execute(text("SELECT * FROM vetting_checks")).all()
    assert rows
    raw = b"".join(
        value if isinstance(value, bytes) else str(value).encode() for row in rows for value in row
    )
    assert CANARY.encode() not in raw
    assert b"flagged" not in raw
