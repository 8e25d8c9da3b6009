"""The offices API contract; request schemas reject unknown fields."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from casework.api import Pattern

OFFICE_CODE = Pattern(
    r"^[a-z0-9][a-z0-9-]{1,31}$",
    error="2 to 32 lower-case letters, digits or '-', starting with a letter or digit.",
)
COUNTRY_CODE = Pattern(r"^[A-Z]{3}$", error="An ISO 3166-1 alpha-3 code.")
NAME = validate.And(
    validate.Length(min=1, max=200),
    Pattern(r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$", error="Not a valid name."),
)


class OfficeSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    country_code = fields.String(required=True)
    active = fields.Boolean(attribute="is_active", required=True)
    mfa_exempt = fields.Boolean(
        required=True,
        metadata={
            "description": "Staff of this office may work without MFA. Off by default; only "
            "an administrator changes it (PATCH with If-Match), and the change is audited."
        },
    )
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    version = fields.Integer(required=True, metadata={"description": 'The ETag is "v<version>".'})


class OfficePageSchema(Schema):
    items = fields.List(fields.Nested(OfficeSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class OfficeCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    code = fields.String(required=True, validate=OFFICE_CODE)
    name = fields.String(required=True, validate=NAME)
    country_code = fields.String(required=True, validate=COUNTRY_CODE)
    active = fields.Boolean(load_default=True)


class OfficeUpdateSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(validate=NAME)
    country_code = fields.String(validate=COUNTRY_CODE)
    active = fields.Boolean()
    mfa_exempt = fields.Boolean(
        metadata={
            "description": "Exempt the office's staff from MFA (true) or require it again "
            "(false: their tokens are good only for enrolment until they enrol)."
        }
    )
