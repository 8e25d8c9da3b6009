"""The workflow API contract: strict inputs, messages without values, documentable schemas."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from marshmallow import Schema, ValidationError

from casework.workflow.consent import ConsentPurpose
from casework.workflow.engine import describe_workflow, transition_ref
from casework.workflow.guards import CheckType, HandoffKind, Priority, SubmissionCategory
from casework.workflow.machines import TABLES, Process
from casework.workflow.schemas import (
    AllowedTransitionOut,
    CheckResultIn,
    ConsentIn,
    HandoffIn,
    InterviewIn,
    InvalidTransitionProblem,
    PartnerIn,
    SubmissionIn,
    TransitionIn,
    WorkflowOut,
)

SENTINEL = "Zainab-Sentinel-4711"
MEMBER = str(uuid.uuid4())
NOW_ISO = datetime.now(UTC).replace(microsecond=0).isoformat()


def _errors(schema: Schema, body: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ValidationError) as caught:
        schema.load(body)
    messages: dict[str, Any] = caught.value.messages  # type: ignore[assignment]
    assert SENTINEL not in json.dumps(messages), "an error repeated the submitted value"
    return messages


def _partner_key() -> str:
    raw = (
        X25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return base64.b64encode(raw).decode()


VALID: list[tuple[Schema, dict[str, Any]]] = [
    (TransitionIn(), {"process": "case_stage", "to": "closed", "reason": "local_integration"}),
    (CheckResultIn(), {"check": "security_screening", "status": "flagged", "findings": "notes"}),
    (
        InterviewIn(),
        {
            "members": [MEMBER],
            "interviewer": str(uuid.uuid4()),
            "conducted_on": "2025-02-01",
            "interpreter_used": True,
            "interpreter_language": "ar",
            "notes": "Interview notes\nsecond line",
        },
    ),
    (
        SubmissionIn(),
        {"destination_country": "CAN", "priority": "urgent", "categories": ["medical_needs"]},
    ),
    (
        ConsentIn(),
        {
            "purpose": "referral",
            "recipients": ["PARTNER-A"],
            "given_by": MEMBER,
            "given_at": NOW_ISO,
            "fields": ["full_name", "members.phone"],
        },
    ),
    (HandoffIn(), {"kind": "office", "office": "irb-02"}),
    (PartnerIn(), {"code": "PARTNER-A", "name": "A partner", "public_key": _partner_key()}),
]


@pytest.mark.parametrize(("schema", "body"), VALID, ids=[type(s).__name__ for s, _ in VALID])
def test_valid_bodies_load(schema: Schema, body: dict[str, Any]) -> None:
    schema.load(body)


@pytest.mark.parametrize(("schema", "body"), VALID, ids=[type(s).__name__ for s, _ in VALID])
def test_unknown_fields_are_refused(schema: Schema, body: dict[str, Any]) -> None:
    assert _errors(schema, {**body, "comment": SENTINEL}) == {"comment": ["Unknown field."]}


def test_transition_choices_are_gathered_for_the_engine() -> None:
    loaded = TransitionIn().load(
        {"process": "determination", "to": "decided", "outcome": "excluded"}
    )
    assert loaded == {
        "process": Process.DETERMINATION,
        "to": "decided",
        "choices": {"outcome": "excluded"},
    }
    loaded = TransitionIn().load({"process": "vetting", "to": "cleared"})
    assert loaded["choices"] == {}


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"process": "case_stage", "to": SENTINEL}, {"to": ["Not a state of this process."]}),
        (
            {"process": "vetting", "to": "not_started"},
            {"to": ["No transition of this process leads to this state."]},
        ),
        (
            {"process": "case_stage", "to": "vetting", "outcome": "recognized"},
            {"outcome": ["Not used by a transition to this state."]},
        ),
        ({"process": "case_stage", "to": "closed", "reason": SENTINEL}, {"reason": None}),
        ({"process": SENTINEL, "to": "closed"}, {"process": None}),
        ({"to": "closed"}, {"process": ["Missing data for required field."]}),
    ],
)
def test_transition_requests_name_a_state_and_valid_choices(
    body: dict[str, Any], errors: dict[str, Any]
) -> None:
    found = _errors(TransitionIn(), body)
    assert set(found) == set(errors)
    for name, expected in errors.items():
        if expected is not None:
            assert found[name] == expected


def test_every_state_a_row_leads_to_is_accepted_with_its_choice() -> None:
    for process, table in TABLES.items():
        for row in table:
            body = {"process": process.value, "to": row.to_state}
            if row.choice is not None:
                body[row.choice.field] = row.choice.values[0]
            TransitionIn().load(body)


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"check": "security_screening", "status": "completed"}, ["status"]),
        ({"check": "medical_examination", "status": "completed"}, ["fit_to_travel"]),
        (
            {"check": "identity_verification", "status": "verified", "fit_to_travel": True},
            ["fit_to_travel"],
        ),
        ({"check": "credibility_assessment", "status": "credible", "findings": "  "}, ["findings"]),
        (
            {"check": "medical_examination", "status": "pending", "fit_to_travel": "yes"},
            ["fit_to_travel"],
        ),
    ],
)
def test_check_results_fit_their_check(body: dict[str, Any], errors: list[str]) -> None:
    assert sorted(_errors(CheckResultIn(), body)) == errors


@pytest.mark.parametrize("check", list(CheckType))
def test_every_check_accepts_its_own_statuses(check: CheckType) -> None:
    from casework.workflow.guards import CHECK_STATUSES

    for status in CHECK_STATUSES[check]:
        body: dict[str, Any] = {"check": check.value, "status": status.value}
        if check is CheckType.MEDICAL_EXAMINATION and status.value == "completed":
            body["fit_to_travel"] = False
        CheckResultIn().load(body)


def _interview(**changes: Any) -> dict[str, Any]:
    body = {"members": [MEMBER], "interviewer": str(uuid.uuid4()), "scheduled_for": NOW_ISO}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (_interview(interpreter_used=True), ["interpreter_language"]),
        (_interview(interpreter_language="ar"), ["interpreter_language"]),
        (
            _interview(interpreter_used=True, interpreter_language="Arabic"),
            ["interpreter_language"],
        ),
        (_interview(members=[]), ["members"]),
        (_interview(members=[MEMBER, MEMBER]), ["members"]),
        (_interview(scheduled_for=None), ["scheduled_for"]),
        (
            _interview(conducted_on=(datetime.now(UTC) + timedelta(days=3)).date().isoformat()),
            ["conducted_on"],
        ),
        (_interview(scheduled_for="2025-01-01T10:00:00"), ["scheduled_for"]),
        (_interview(notes=SENTINEL + "\x00"), ["notes"]),
    ],
)
def test_interviews_are_consistent(body: dict[str, Any], errors: list[str]) -> None:
    assert sorted(_errors(InterviewIn(), body)) == errors


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"destination_country": "XXA"}, ["destination_country"]),
        ({"destination_country": SENTINEL}, ["destination_country"]),
        ({"categories": []}, ["categories"]),
        ({"categories": [c.value for c in list(SubmissionCategory)[:3]]}, ["categories"]),
        ({"categories": ["medical_needs", "medical_needs"]}, ["categories"]),
        ({"priority": "whenever"}, ["priority"]),
        ({}, ["_schema"]),
    ],
)
def test_submissions_name_a_state_a_priority_and_one_or_two_categories(
    body: dict[str, Any], errors: list[str]
) -> None:
    assert sorted(_errors(SubmissionIn(), body)) == errors


def test_a_submission_may_be_drafted_in_parts() -> None:
    assert SubmissionIn().load({"priority": "emergency"}) == {"priority": Priority.EMERGENCY}


def _consent(**changes: Any) -> dict[str, Any]:
    body = {
        "purpose": "resettlement_submission",
        "recipients": ["CAN"],
        "given_by": MEMBER,
        "given_at": NOW_ISO,
    }
    body.update(changes)
    return body


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (_consent(recipients=["PARTNER-A"]), ["recipients"]),
        (_consent(recipients=[]), ["recipients"]),
        (_consent(recipients=["CAN", "CAN"]), ["recipients"]),
        (_consent(purpose="referral", recipients=[SENTINEL + " !"]), ["recipients"]),
        (
            _consent(given_at=(datetime.now(UTC) + timedelta(days=1)).isoformat()),
            ["given_at"],
        ),
        (_consent(given_at="2025-01-01T00:00:00"), ["given_at"]),
        (_consent(expires_at="2020-01-01T00:00:00+00:00"), ["expires_at"]),
        (_consent(fields=["Full Name"]), ["fields"]),
        (_consent(fields=["phone", "phone"]), ["fields"]),
        (_consent(given_by=SENTINEL), ["given_by"]),
    ],
)
def test_consent_records_are_checked(body: dict[str, Any], errors: list[str]) -> None:
    assert sorted(_errors(ConsentIn(), body)) == errors


def test_consent_fields_default_to_none_travelling() -> None:
    loaded = ConsentIn().load(_consent())
    assert loaded["fields"] == []
    assert loaded["purpose"] is ConsentPurpose.RESETTLEMENT_SUBMISSION


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"kind": "office"}, ["office"]),
        ({"kind": "partner", "office": "irb-02"}, ["office", "partner"]),
        ({"kind": "office", "office": "IRB 02"}, ["office"]),
        ({"kind": "courier", "office": "irb-02"}, ["kind"]),
    ],
)
def test_a_hand_off_names_one_target_of_its_kind(body: dict[str, Any], errors: list[str]) -> None:
    assert sorted(_errors(HandoffIn(), body)) == errors


def test_a_partner_hand_off_loads() -> None:
    loaded = HandoffIn().load({"kind": "partner", "partner": "PARTNER-A"})
    assert loaded == {"kind": HandoffKind.PARTNER, "partner": "PARTNER-A"}


@pytest.mark.parametrize(
    "key",
    [
        base64.b64encode(bytes(32)).decode(),
        base64.b64encode(bytes(31)).decode(),
        SENTINEL,
        "",
    ],
)
def test_partner_keys_must_be_usable_x25519_keys(key: str) -> None:
    body = {"code": "PARTNER-A", "name": "A partner", "public_key": key}
    assert sorted(_errors(PartnerIn(), body)) == ["public_key"]


# --- outputs ------------------------------------------------------------------------------


def test_the_workflow_document_dumps_and_is_plain_json() -> None:
    dumped = WorkflowOut().dump(describe_workflow())
    assert json.loads(json.dumps(dumped)) == dumped
    assert WorkflowOut().validate(dumped) == {}
    first = dumped["processes"][0]["transitions"][0]
    assert first["from"] == "intake"
    assert first["permission"] == "cases:write"


def test_allowed_transitions_dump_with_their_choice() -> None:
    row = next(t for t in TABLES[Process.CASE_STAGE] if t.name == "close")
    dumped = AllowedTransitionOut().dump(transition_ref(row))
    assert dumped["from"] == "intake"
    assert dumped["choice"]["field"] == "reason"


def test_the_schemas_document_in_openapi() -> None:
    spec = APISpec("t", "1", "3.0.3", plugins=[MarshmallowPlugin()])
    for schema in (
        WorkflowOut,
        InvalidTransitionProblem,
        TransitionIn,
        CheckResultIn,
        InterviewIn,
        SubmissionIn,
        ConsentIn,
        HandoffIn,
        PartnerIn,
    ):
        spec.components.schema(schema.__name__, schema=schema)
    components = spec.to_dict()["components"]["schemas"]
    assert components["TransitionIn"]["additionalProperties"] is False
    categories = components["SubmissionIn"]["properties"]["categories"]
    assert categories["maxItems"] == 2
    assert set(categories["items"]["enum"]) == {c.value for c in SubmissionCategory}
    assert "from" in components["TransitionDefinitionOut"]["properties"]
