"""The code lists' contract."""

from __future__ import annotations

from marshmallow import Schema, fields


class CodeListSummaryOut(Schema):
    name = fields.String(required=True, metadata={"description": "Use in /codes/{name}."})
    description = fields.String(required=True, metadata={"description": "In English."})


class CodeListIndexOut(Schema):
    lists = fields.List(fields.Nested(CodeListSummaryOut), required=True)
    languages = fields.List(
        fields.String(), required=True, metadata={"description": "Languages of the labels."}
    )


class CodeOut(Schema):
    value = fields.String(required=True, metadata={"description": "What the API accepts."})
    label = fields.String(required=True, metadata={"description": "For people to read."})


class CodeListOut(Schema):
    name = fields.String(required=True)
    language = fields.String(
        required=True, metadata={"description": "Of the labels: chosen by Accept-Language."}
    )
    codes = fields.List(fields.Nested(CodeOut), required=True)
