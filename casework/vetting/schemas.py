"""The vetting API contract: interviews, checks and duplicate-alert reviews.

Own schemas rather than ``casework.workflow.schemas.InterviewIn`` and
``CheckResultIn``: here the check is named by the path (PUT replaces one
check), the interviewer defaults to the caller, an interview is also changed
by PATCH, and patterns are published with :class:`casework.api.Pattern`.
Vocabulary and messages are shared with the workflow schemas. No message
repeats a submitted value.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from casework.api import Pattern, StrictBoolean, StrictSchema, Text, unique
from casework.workflow.codes import CHECK_STATUSES, CheckType, MedicalExamination
from casework.workflow.schemas import (
    FINDINGS_MAX,
    IN_THE_FUTURE,
    INTERVIEW_MEMBERS_MAX,
    LANGUAGE_TAG,
    NOT_A_LANGUAGE,
    NOT_A_STATUS,
    NOTHING_TO_CHANGE,
    REQUIRED_WHEN_COMPLETED,
)

LANGUAGE_MAX = 35
NEEDS_A_DATE = "Give scheduled_for, conducted_on, or both."
ONLY_WHEN_COMPLETED = "Only when the medical examination is completed."
MEDICAL_ONLY = "Only for the medical examination."


class InterviewStatus(StrEnum):
    SCHEDULED = "scheduled"
    RECORDED = "recorded"


class ReviewOutcome(StrEnum):
    """What a vetting officer concluded about a duplicate alert, from their case's side."""

    DISTINCT_PERSONS = "distinct_persons"
    SAME_PERSON_ERROR = "same_person_error"
    FAMILY_SPLIT = "family_split"
    SUSPECTED_IMPOSTOR = "suspected_impostor"


def _not_in_future(value: Any) -> None:
    # A day of slack: the interview may have happened "today" in a zone ahead of UTC.
    if value > datetime.now(UTC).date() + timedelta(days=1):
        raise ValidationError(IN_THE_FUTURE)


def _enum_out(enum: type[StrEnum], description: str, **kwargs: Any) -> fields.String:
    values = [member.value for member in enum]
    return fields.String(
        validate=validate.OneOf(values), metadata={"description": description}, **kwargs
    )


# --- interviews ---------------------------------------------------------------------------


def _members(**kwargs: Any) -> fields.List:
    return fields.List(
        fields.UUID(),
        validate=[validate.Length(min=1, max=INTERVIEW_MEMBERS_MAX), unique],
        metadata={"description": "Ids of the household members interviewed (of this case)."},
        **kwargs,
    )


def _language(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=[
            validate.Length(max=LANGUAGE_MAX),
            Pattern(f"^{LANGUAGE_TAG.pattern}$", error=NOT_A_LANGUAGE),
        ],
        metadata={"description": "Language interpreted (ISO 639 / BCP 47).", "example": "ar"},
        **kwargs,
    )


class _InterviewFields(StrictSchema):
    interviewer = fields.UUID(
        metadata={
            "description": (
                "User id of the interviewer, a vetting officer or supervisor of the case's "
                "office; default: you. An interviewer may not take the vetting decision."
            )
        }
    )
    scheduled_for = fields.AwareDateTime(
        allow_none=True, metadata={"description": "When it is planned."}
    )
    conducted_on = fields.Date(
        validate=_not_in_future,
        metadata={"description": "When it took place; records the interview. Cannot be undone."},
    )
    interpreter_used = StrictBoolean()
    notes = Text(max_length=FINDINGS_MAX, multiline=True, allow_none=True)


class InterviewIn(_InterviewFields):
    """Schedule an interview (``scheduled_for``) or record one held (``conducted_on``)."""

    members = _members(required=True)
    interpreter_language = _language()

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        if data.get("scheduled_for") is None and "conducted_on" not in data:
            errors["scheduled_for"] = [NEEDS_A_DATE]
        if errors:
            raise ValidationError(errors)


class InterviewPatchIn(_InterviewFields):
    """Change an interview; send ``conducted_on`` to record a scheduled one as held.

    Interpreter rules apply to the interview as it would be afterwards: a
    language only with an interpreter, and one is required then.
    """

    members = _members()
    interpreter_language = _language(allow_none=True)

    @validates_schema
    def _not_empty(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError(NOTHING_TO_CHANGE)


class InterviewOut(Schema):
    """An interview, decrypted."""

    id = fields.UUID(required=True)
    status = _enum_out(InterviewStatus, "recorded once conducted_on is set.", required=True)
    interviewer = fields.String(required=True, metadata={"description": "User id."})
    recorded_by = fields.String(
        allow_none=True, required=True, metadata={"description": "User id; null while scheduled."}
    )
    members = fields.List(fields.UUID(), required=True)
    scheduled_for = fields.DateTime(allow_none=True, required=True)
    conducted_on = fields.Date(allow_none=True, required=True)
    interpreter_used = fields.Boolean(required=True)
    interpreter_language = fields.String(allow_none=True, required=True)
    notes = fields.String(allow_none=True, required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class InterviewListOut(Schema):
    """Every interview of the case (at most a hundred: no pagination)."""

    items = fields.List(fields.Nested(InterviewOut), required=True)


# --- checks -------------------------------------------------------------------------------


class CheckIn(StrictSchema):
    """The result of one check, replacing the previous one (findings are stored encrypted).

    ``status`` takes the values of the check named in the path; ``pending``
    means not complete. ``fit_to_travel`` belongs to a completed medical
    examination only, and is required there.
    """

    status = fields.String(
        required=True,
        validate=validate.Length(max=32),
        metadata={
            "description": "; ".join(
                f"{check.value}: " + ", ".join(s.value for s in CHECK_STATUSES[check])
                for check in CheckType
            )
        },
    )
    findings = Text(max_length=FINDINGS_MAX, multiline=True, allow_none=True)
    fit_to_travel = StrictBoolean(
        allow_none=True, metadata={"description": "Medical examination only."}
    )


def result_errors(check: CheckType, data: dict[str, Any]) -> dict[str, list[str]]:
    """Field errors of ``data`` (``CheckIn``) as a result of ``check``, which the path names."""
    statuses = [s.value for s in CHECK_STATUSES[check]]
    errors: dict[str, list[str]] = {}
    if data["status"] not in statuses:
        errors["status"] = [NOT_A_STATUS + " One of: " + ", ".join(statuses) + "."]
    fit = data.get("fit_to_travel")
    if check is not CheckType.MEDICAL_EXAMINATION:
        if fit is not None:
            errors["fit_to_travel"] = [MEDICAL_ONLY]
    elif data["status"] == MedicalExamination.COMPLETED and fit is None:
        errors["fit_to_travel"] = [REQUIRED_WHEN_COMPLETED]
    elif data["status"] == MedicalExamination.PENDING and fit is not None:
        errors["fit_to_travel"] = [ONLY_WHEN_COMPLETED]
    return errors


class CheckOut(Schema):
    """One check. Callers without ``medical:read`` get the medical and security screening
    findings, and fitness to travel, as null with ``redacted`` true."""

    check = _enum_out(CheckType, "Which check.", required=True)
    status = fields.String(required=True, metadata={"description": "pending: not complete."})
    findings = fields.String(allow_none=True, required=True)
    fit_to_travel = fields.Boolean(allow_none=True, required=True)
    redacted = fields.Boolean(
        required=True, metadata={"description": "Findings withheld: needs medical:read."}
    )
    updated_at = fields.DateTime(
        allow_none=True, required=True, metadata={"description": "Null: never recorded."}
    )


class CheckListOut(Schema):
    """The four checks of the case, recorded or pending, in a fixed order."""

    items = fields.List(fields.Nested(CheckOut), required=True)


# --- duplicate-alert review ---------------------------------------------------------------


class AlertReviewIn(StrictSchema):
    """Your office's conclusion about a duplicate alert (stored encrypted)."""

    outcome = fields.Enum(
        ReviewOutcome,
        by_value=True,
        required=True,
        metadata={"description": "What the review found."},
    )
    notes = Text(max_length=FINDINGS_MAX, multiline=True, allow_none=True)


class AlertReviewOut(Schema):
    alert_id = fields.UUID(required=True)
    version = fields.Integer(required=True, metadata={"description": "The alert's new version."})
    references = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "Your office's case(s) of the alert, reviewed from their side."},
    )
    outcome = _enum_out(ReviewOutcome, "What the review found.", required=True)
    notes = fields.String(allow_none=True, required=True)
    reviewed_by = fields.String(required=True, metadata={"description": "User id."})
    reviewed_at = fields.DateTime(required=True)
