"""The reports' and retention's API contract."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from casework.api import Pattern, StrictBoolean, StrictInteger, StrictSchema, Text
from casework.offices.schemas import OFFICE_CODE
from casework.reports.codes import RetentionState
from casework.reports.retention import MAX_DAYS
from casework.reports.service import Filters

MONTH = Pattern(r"^[0-9]{4}-(0[1-9]|1[0-2])$", error="A whole month: YYYY-MM.")


class ReportArgs(StrictSchema):
    """Whole offices and whole months only: no free ranges, so differences stay bounded."""

    office = fields.String(
        validate=OFFICE_CODE, metadata={"description": "One office (analysts: any)."}
    )
    month = fields.String(validate=MONTH, metadata={"description": "One calendar month, YYYY-MM."})
    format = fields.String(
        load_default=None,
        validate=validate.OneOf(["json", "csv"]),
        metadata={"description": "csv, or json (default); `Accept: text/csv` also gives CSV."},
    )

    @post_load
    def to_filters(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        return {
            "filters": Filters(data.get("office"), data.get("month")),
            "format": data.get("format"),
        }


class ReportNameOut(StrictSchema):
    name = fields.String(required=True)
    title = fields.String(required=True)
    unit = fields.String(required=True)


class ReportListOut(StrictSchema):
    items = fields.List(fields.Nested(ReportNameOut), required=True)


class SuppressionOut(StrictSchema):
    k = fields.Integer(required=True)
    rounding = fields.Integer(required=True, metadata={"description": "0: exact counts."})
    method = fields.String(required=True)


class FiltersOut(StrictSchema):
    office = fields.String(allow_none=True)
    month = fields.String(allow_none=True)


class ReportOut(StrictSchema):
    """One view of a report. Each cell and total holds its dimension values and ``count``:
    an integer, or ``{"suppressed": true}``."""

    report = fields.String(required=True)
    title = fields.String(required=True)
    unit = fields.String(required=True)
    filters = fields.Nested(FiltersOut, required=True)
    dimensions = fields.List(fields.String(), required=True)
    cells = fields.List(fields.Dict(), required=True)
    totals = fields.List(
        fields.Dict(),
        required=True,
        metadata={"description": "Each dimension's margin, then the grand total (no dimension)."},
    )
    suppression = fields.Nested(SuppressionOut, required=True)


class RulesIn(StrictSchema):
    """Days after a case's last change; a state left out is never erased by retention."""

    closed = StrictInteger(validate=validate.Range(min=1, max=MAX_DAYS))
    handed_off = StrictInteger(validate=validate.Range(min=1, max=MAX_DAYS))
    arrived = StrictInteger(validate=validate.Range(min=1, max=MAX_DAYS))


class PolicyIn(StrictSchema):
    rules = fields.Nested(RulesIn, required=True)

    @validates_schema
    def _not_empty(self, data: dict[str, Any], **_: Any) -> None:
        if not data.get("rules"):
            raise ValidationError("Give a period for at least one state.", "rules")


class PolicyRowOut(StrictSchema):
    id = fields.Integer(allow_none=True)
    rules = fields.Dict(
        keys=fields.String(validate=validate.OneOf([s.value for s in RetentionState])),
        values=fields.Integer(),
        required=True,
    )
    status = fields.String(required=True)
    proposed_by = fields.String(allow_none=True, metadata={"description": "null: configuration"})
    proposed_at = fields.DateTime(allow_none=True)
    approved_by = fields.String(allow_none=True)
    approved_at = fields.DateTime(allow_none=True)


class PolicyOut(StrictSchema):
    version = fields.Integer(required=True)
    active = fields.Nested(PolicyRowOut, allow_none=True)
    pending = fields.Nested(PolicyRowOut, allow_none=True)


class LegalHoldIn(StrictSchema):
    hold = StrictBoolean(required=True)
    reason = Text(max_length=200, allow_none=True, load_default=None)


class LegalHoldOut(StrictSchema):
    reference = fields.String(required=True)
    hold = fields.Boolean(required=True)
    reason = fields.String(allow_none=True)
    changed_by = fields.String(required=True)
    changed_at = fields.DateTime(required=True)
    version = fields.Integer(required=True)
