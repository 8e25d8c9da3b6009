"""The workflow API contract: the published state machines, transition requests, and the
inputs the guards depend on (checks, interviews, submissions, consent, hand-offs).

Every input schema rejects unknown fields, nested ones included, and no error
message repeats a submitted value. Enum values come from
:mod:`casework.workflow.machines` and :mod:`casework.workflow.guards`, so the
contract and the engine share one vocabulary.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from casework.api import (
    ProblemSchema,
    StrictSchema,
    Text,
    enum_in,
    unique,
)
from casework.cases.codes import ResettlementStage, Stage
from casework.workflow.codes import MAX_SUBMISSION_CATEGORIES, Priority, SubmissionCategory
from casework.workflow.guards import is_destination_country
from casework.workflow.machines import (
    STATES,
    TABLES,
    AppealOutcome,
    ClosureReason,
    DeterminationOutcome,
    DeterminationStage,
    HandoffStatus,
    Process,
    ReopenReason,
    StateDecision,
    VettingState,
)

FINDINGS_MAX = 20_000
NAME_MAX = 200
RECIPIENTS_MAX = 20
CONSENT_FIELDS_MAX = 200
INTERVIEW_MEMBERS_MAX = 50
CLOCK_SKEW = timedelta(minutes=5)
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,63}")
FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*")
FIELD_NAME_MAX = 100
LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}")

NOT_A_STATE = "Not a state of this process."
NO_WAY_IN = "No transition of this process leads to this state."
NOT_A_DESTINATION = "Not an ISO 3166-1 alpha-3 code of a state."
NOT_AN_IDENTIFIER = "Must be 2 to 64 letters, digits, dots, underscores or hyphens."
NOT_A_FIELD_NAME = "Must be a field name: lower-case words joined by underscores and dots."
NOT_A_LANGUAGE = "Must be a language code (ISO 639, optionally with a BCP 47 subtag)."
NOT_A_STATUS = "Not a status of this check."
IN_THE_FUTURE = "Must not be in the future."
EXPIRES_BEFORE_GIVEN = "Must be later than given_at."
NOTHING_TO_CHANGE = "Nothing to change."
MEDICAL_ONLY = "Only for the medical examination."
REQUIRED_WHEN_COMPLETED = "Required when the medical examination is completed."
REQUIRED_WITH_INTERPRETER = "Required when an interpreter was used."
ONLY_WITH_INTERPRETER = "Only when an interpreter was used."
KIND_NEEDS = "A hand-off of kind {kind} names {field}."
NOT_FOR_KIND = "Not used by a hand-off of this kind."

_CHOICE_FIELDS = ("reason", "outcome", "decision")


def _enum_out(enum: type[StrEnum], description: str) -> fields.String:
    # Output takes plain strings or members alike; OneOf documents the values.
    values = [member.value for member in enum]
    return fields.String(validate=validate.OneOf(values), metadata={"description": description})


# --- the published state machines (GET /api/v1/workflow) ---------------------------------


class ChoiceOut(Schema):
    field = fields.String(metadata={"description": "Request member that carries the choice."})
    values = fields.List(fields.String())


class AllowedTransitionOut(Schema):
    """A transition the caller may take now; a case's full read lists them."""

    process = _enum_out(Process, "The process that moves.")
    name = fields.String(metadata={"example": "start_vetting"})
    from_ = fields.String(data_key="from", attribute="from")
    to = fields.String()
    choice = fields.Nested(
        ChoiceOut,
        allow_none=True,
        metadata={"description": "The reason, outcome or decision the request must carry."},
    )


class TransitionDefinitionOut(Schema):
    name = fields.String()
    from_ = fields.String(data_key="from", attribute="from")
    to = fields.String()
    permission = fields.String(metadata={"example": "vetting:decide"})
    guards = fields.List(
        fields.String(), metadata={"description": "Names of the conditions that must hold."}
    )
    four_eyes = fields.List(
        fields.String(), metadata={"description": "The people the actor must not be."}
    )
    scope = fields.String(metadata={"description": "owning_office or receiving_office."})
    choice = fields.Nested(ChoiceOut, allow_none=True)


class ProcessOut(Schema):
    name = _enum_out(Process, "The process.")
    states = fields.List(fields.String())
    initial_state = fields.String()
    transitions = fields.List(fields.Nested(TransitionDefinitionOut))


class GuardOut(Schema):
    name = fields.String(metadata={"example": "vetting_checks_complete"})
    description = fields.String(metadata={"description": "Shown when the guard refuses."})


class WorkflowOut(Schema):
    """Every process as data: states, transitions with permission and guards, and guards."""

    processes = fields.List(fields.Nested(ProcessOut))
    guards = fields.List(fields.Nested(GuardOut))


class InvalidTransitionProblem(ProblemSchema):
    """409 ``urn:casework:problem:invalid-transition``."""

    unmet_guards = fields.List(
        fields.String(), metadata={"description": "Guards that do not hold now."}
    )
    allowed_transitions = fields.List(
        fields.Nested(AllowedTransitionOut),
        metadata={"description": "What the caller may do instead, from the current state."},
    )


# --- a case's workflow (transition answers, the case read) --------------------------------


class WorkflowStatesOut(Schema):
    """Every process's current state on the case."""

    case_stage = _enum_out(Stage, "The case's stage (also ``stage`` on the case).")
    vetting = _enum_out(VettingState, "Vetting of the case.")
    determination = _enum_out(DeterminationStage, "Refugee status determination stage.")
    resettlement = _enum_out(ResettlementStage, "Resettlement stage.")
    handoff = _enum_out(HandoffStatus, "The latest hand-off.")


class SubmissionOut(Schema):
    """The resettlement submission as drafted (holders of resettlement permissions only)."""

    destination_country = fields.String(allow_none=True, metadata={"example": "CAN"})
    priority = fields.String(allow_none=True, validate=validate.OneOf([p.value for p in Priority]))
    categories = fields.List(
        fields.String(validate=validate.OneOf([c.value for c in SubmissionCategory]))
    )


class BestInterestsOut(Schema):
    """The best-interests assessment of a child at risk, once completed."""

    completed = fields.Boolean()
    completed_on = fields.Date(allow_none=True)
    note = fields.String(allow_none=True)


class CaseWorkflowOut(Schema):
    """The case's workflow: states, and the decisions the caller's permissions let them see.

    Members the caller may not see are left out: outcomes need a determination
    permission; the state decision and the submission a resettlement one; the
    best-interests assessment ``cases:write``.
    """

    states = fields.Nested(WorkflowStatesOut)
    last_active_stage = fields.String(
        allow_none=True,
        validate=validate.OneOf([s.value for s in Stage]),
        metadata={"description": "The active stage a closed or handed-off case left."},
    )
    first_instance_outcome = fields.String(
        allow_none=True, validate=validate.OneOf([o.value for o in DeterminationOutcome])
    )
    appeal_outcome = fields.String(
        allow_none=True, validate=validate.OneOf([o.value for o in AppealOutcome])
    )
    state_decision = fields.String(
        allow_none=True, validate=validate.OneOf([d.value for d in StateDecision])
    )
    submission = fields.Nested(SubmissionOut, allow_none=True)
    best_interests_assessment = fields.Nested(BestInterestsOut)
    closure_reason = fields.String(
        allow_none=True,
        validate=validate.OneOf([r.value for r in ClosureReason]),
        metadata={"description": "Why the case was last closed."},
    )
    reopen_reason = fields.String(
        allow_none=True,
        validate=validate.OneOf([r.value for r in ReopenReason]),
        metadata={"description": "Why the case was last reopened."},
    )


class CaseWorkflowResultOut(Schema):
    """A case's workflow after a change, with what the caller may do next."""

    reference = fields.String()
    version = fields.Integer(metadata={"description": "The case's new version (the ETag)."})
    workflow = fields.Nested(CaseWorkflowOut)
    allowed_transitions = fields.List(fields.Nested(AllowedTransitionOut))


# --- transitions --------------------------------------------------------------------------


class ChoiceIn(StrictSchema):
    """The ``choice`` of an ``allowed_transitions`` entry, sent back as it was offered."""

    field = fields.String(required=True)
    values = fields.List(fields.String(), required=True)


class TransitionIn(StrictSchema):
    """A transition request; send ``If-Match``. The source state is the case's current one.

    An entry of a case's ``allowed_transitions`` is accepted as it is given (``name``,
    ``from`` and ``choice`` included); an entry that offers a ``choice`` is sent with
    the chosen value added under the choice's ``field``. ``reason`` (closing,
    reopening), ``outcome`` (status decisions) and ``decision`` (a resettlement
    state's decision) go with the transitions that need them; ``GET /api/v1/workflow``
    says which. A ``from`` that is no longer the case's state answers 409.
    """

    process = enum_in(Process, "The process to move.", required=True)
    to = fields.String(required=True, metadata={"example": "vetting"})
    name = fields.String(metadata={"description": "The transition's name, as offered."})
    from_ = fields.String(
        data_key="from",
        attribute="from",
        metadata={"description": "The state it was offered from; 409 when no longer current."},
    )
    choice = fields.Nested(
        ChoiceIn, allow_none=True, metadata={"description": "As offered (or null); not a value."}
    )
    reason = fields.String(metadata={"description": "Why a case is closed or reopened."})
    outcome = fields.String(metadata={"description": "A status determination outcome."})
    decision = fields.String(metadata={"description": "A resettlement state's decision."})

    @validates_schema
    def _known_target(self, data: dict[str, Any], **_: Any) -> None:
        process, target = data["process"], data["to"]
        if target not in {member.value for member in STATES[process]}:
            raise ValidationError({"to": [NOT_A_STATE]})
        rows = [t for t in TABLES[process] if t.to_state == target]
        if not rows:
            raise ValidationError({"to": [NO_WAY_IN]})
        errors: dict[str, list[str]] = {}
        if "from" in data and data["from"] not in {member.value for member in STATES[process]}:
            errors["from"] = [NOT_A_STATE]
        if "name" in data and data["name"] not in {t.name for t in rows}:
            errors["name"] = ["Not the name of a transition to this state."]
        offered = data.get("choice")
        if offered is not None and offered["field"] not in {
            t.choice.field for t in rows if t.choice
        }:
            errors["choice"] = ["Not the choice of a transition to this state."]
        for name in _CHOICE_FIELDS:
            if name not in data:
                continue
            values = {
                v for t in rows if t.choice and t.choice.field == name for v in t.choice.values
            }
            if not values:
                errors[name] = ["Not used by a transition to this state."]
            elif data[name] not in values:
                errors[name] = ["Must be one of: " + ", ".join(sorted(values)) + "."]
        if errors:
            raise ValidationError(errors)

    @post_load
    def _gather_choices(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data.pop("choice", None)  # the offer itself; the chosen value is under its field
        data["choices"] = {name: data.pop(name) for name in _CHOICE_FIELDS if name in data}
        return data


# --- vetting ------------------------------------------------------------------------------


def _destination(value: str) -> None:
    if not is_destination_country(value):
        raise ValidationError(NOT_A_DESTINATION)


class SubmissionIn(StrictSchema):
    """The resettlement submission as drafted; review needs all three parts."""

    destination_country = fields.String(validate=_destination, metadata={"example": "CAN"})
    priority = enum_in(Priority, "How fast the case must be processed.")
    categories = fields.List(
        enum_in(SubmissionCategory, "A UNHCR submission category."),
        validate=[validate.Length(min=1, max=MAX_SUBMISSION_CATEGORIES), unique],
        metadata={"description": "One or two submission categories, the main one first."},
    )

    @validates_schema
    def _not_empty(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError(NOTHING_TO_CHANGE)


class BestInterestsIn(StrictSchema):
    """A completed best-interests assessment (BIA) of a child at risk; the note is sealed."""

    completed_on = fields.Date(required=True, metadata={"description": "Not in the future."})
    note = Text(max_length=FINDINGS_MAX, multiline=True, allow_none=True)

    @validates_schema
    def _not_future(self, data: dict[str, Any], **_: Any) -> None:
        if data["completed_on"] > datetime.now(UTC).date() + timedelta(days=1):
            raise ValidationError({"completed_on": [IN_THE_FUTURE]})
