"""The workflow API contract: strict inputs, messages without values, documentable schemas."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, ValidationError

from casework.handoff.schemas import ConsentIn, HandoffIn
from casework.workflow.codes import HandoffKind, Priority, SubmissionCategory
from casework.workflow.consent import ConsentPurpose
from casework.workflow.engine import describe_workflow, transition_ref
from casework.workflow.machines import TABLES, Process
from casework.workflow.schemas import (
    AllowedTransitionOut,
    InvalidTransitionProblem,
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


VALID: list[tuple[Schema, dict[str, Any]]] = [
    (TransitionIn(), {"process": "case_stage", "to": "closed", "reason": "local_integration"}),
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
        SubmissionIn,
        ConsentIn,
        HandoffIn,
    ):
        spec.components.schema(schema.__name__, schema=schema)
    components = spec.to_dict()["components"]["schemas"]
    assert components["TransitionIn"]["additionalProperties"] is False
    categories = components["SubmissionIn"]["properties"]["categories"]
    assert categories["maxItems"] == 2
    assert set(categories["items"]["enum"]) == {c.value for c in SubmissionCategory}
    assert "from" in components["TransitionDefinitionOut"]["properties"]
