"""The identity API contract: sign-in, tokens, MFA and staff accounts.

Every request schema rejects unknown fields. Raw passwords are capped at 4,096
characters here (the policy's own limit is lower and answers with a reason),
so nobody can make the server hash a megabyte. No message repeats a value.
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from casework.api import Pattern
from casework.authz.permissions import STAFF_ROLES
from casework.offices.schemas import OFFICE_CODE

MAX_RAW_PASSWORD = 4096
USERNAME = Pattern(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$",
    error="3 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit.",
)


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


def _password(**metadata: str) -> fields.String:
    return fields.String(
        required=True,
        load_only=True,
        validate=validate.Length(min=1, max=MAX_RAW_PASSWORD),
        metadata=metadata,
    )


class LoginSchema(StrictSchema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=256))
    password = _password()
    totp = fields.String(
        validate=validate.Length(max=16),
        metadata={"description": "The current one-time code; required once MFA is enabled."},
    )


class TokenSchema(Schema):
    token = fields.String(
        required=True, metadata={"description": "Opaque; send as `Authorization: Bearer ...`."}
    )
    expires_at = fields.DateTime(
        required=True,
        metadata={
            "description": "Absolute expiry; the token also lapses after the configured "
            "idle time without use."
        },
    )
    mfa_enrolment_required = fields.Boolean(
        metadata={
            "description": "Present (true) when the token is good only for "
            "/auth/mfa/enrol and /auth/mfa/confirm: MFA is required (the role needs it and "
            "the office is not exempt, or an administrator reset it) and not yet enrolled."
        }
    )


class MeSchema(Schema):
    id = fields.UUID(required=True)
    username = fields.String(required=True)
    role = fields.String(required=True)
    office = fields.String(required=True, allow_none=True)
    permissions = fields.List(fields.String(), required=True)
    mfa_enabled = fields.Boolean(required=True)
    mfa_pending = fields.Boolean(
        required=True, metadata={"description": "This token still awaits MFA enrolment."}
    )


class MfaEnrolmentSchema(Schema):
    secret = fields.String(required=True, metadata={"description": "Base32 TOTP seed."})
    otpauth_uri = fields.String(required=True, metadata={"description": "For a QR code."})


class MfaReauthSchema(StrictSchema):
    """The proof a change of one's own second factor needs besides the bearer token."""

    password = _password(description="The account's password.")
    totp = fields.String(
        validate=validate.Length(min=1, max=16),
        load_only=True,
        metadata={"description": "The current one-time code; required while MFA is on."},
    )
    enrolment_code = fields.String(
        validate=validate.Length(min=1, max=32),
        load_only=True,
        metadata={
            "description": "The code an administrator's MFA reset handed out; required to "
            "enrol after a reset."
        },
    )


class MfaResetSchema(Schema):
    enrolment_code = fields.String(
        required=True,
        metadata={"description": "One-time code the user's next enrolment needs (shown once)."},
    )


class MfaConfirmSchema(StrictSchema):
    totp = fields.String(required=True, validate=validate.Length(min=1, max=16))


class UserSchema(Schema):
    id = fields.UUID(required=True)
    username = fields.String(required=True)
    role = fields.String(required=True)
    office = fields.String(attribute="office_code", required=True, allow_none=True)
    active = fields.Boolean(attribute="is_active", required=True)
    mfa_enabled = fields.Boolean(attribute="is_mfa_enabled", required=True)
    last_login_at = fields.DateTime(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    version = fields.Integer(required=True, metadata={"description": 'The ETag is "v<version>".'})


class UserPageSchema(Schema):
    items = fields.List(fields.Nested(UserSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class UserCreateSchema(StrictSchema):
    username = fields.String(required=True, validate=USERNAME)
    password = _password()
    role = fields.String(required=True, validate=validate.OneOf(STAFF_ROLES))
    office = fields.String(
        load_default=None,
        allow_none=True,
        validate=OFFICE_CODE,
        metadata={"description": "Required for every role but admin and auditor."},
    )


class UserUpdateSchema(StrictSchema):
    role = fields.String(validate=validate.OneOf(STAFF_ROLES))
    office = fields.String(allow_none=True, validate=OFFICE_CODE)
    active = fields.Boolean()


class PasswordResetSchema(StrictSchema):
    password = _password(description="The new password (the policy applies).")
