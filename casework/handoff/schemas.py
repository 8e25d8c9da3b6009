"""The consent, partner and hand-off API contract.

Consent and hand-off requests (``ConsentIn``, ``HandoffIn``) are checked
against the workflow's vocabulary; a partner's schema also takes its Ed25519
verification key, because importing packages from it needs one. Responses name
offices, partners, users by id, statuses and times; consent responses carry
case data and are only ever sent to the case's office.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from casework.api import Pattern, StrictSchema, Text, enum_in, matches, unique
from casework.handoff.models import RECORD_STATUSES
from casework.handoff.partner_package import KEY_BYTES, PackageError, load_partner_public_key
from casework.offices.schemas import OFFICE_CODE
from casework.pagination import PageArgs
from casework.workflow.codes import HandoffKind
from casework.workflow.consent import ConsentPurpose
from casework.workflow.guards import is_destination_country
from casework.workflow.schemas import (
    CLOCK_SKEW,
    CONSENT_FIELDS_MAX,
    EXPIRES_BEFORE_GIVEN,
    FIELD_NAME,
    FIELD_NAME_MAX,
    IDENTIFIER,
    IN_THE_FUTURE,
    KIND_NEEDS,
    NOT_A_DESTINATION,
    NOT_A_FIELD_NAME,
    NOT_AN_IDENTIFIER,
    NOT_FOR_KIND,
    RECIPIENTS_MAX,
)

PARTNER_CODE = Pattern(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$",
    error="Must be 2 to 64 letters, digits, dots, underscores or hyphens.",
)
NOT_AN_X25519_KEY = f"Must be a base64 X25519 public key ({KEY_BYTES} bytes) that is safe to use."
NOT_AN_ED25519_KEY = f"Must be a base64 Ed25519 public key ({KEY_BYTES} bytes)."
_B64_KEY = Pattern(r"^[A-Za-z0-9+/]{43}=$", error=f"Must be {KEY_BYTES} bytes in base64.")


def _decode(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("Not base64.") from None


class ConsentIn(StrictSchema):
    """Consent given by one member. Withdrawal has its own request and takes effect at once."""

    purpose = enum_in(ConsentPurpose, "What the data may be used for.", required=True)
    recipients = fields.List(
        fields.String(validate=matches(IDENTIFIER, NOT_AN_IDENTIFIER)),
        required=True,
        validate=[validate.Length(min=1, max=RECIPIENTS_MAX), unique],
        metadata={
            "description": (
                "Who may receive the data: partner codes for referral and data sharing, "
                "ISO 3166-1 alpha-3 state codes for a resettlement submission."
            )
        },
    )
    given_by = fields.UUID(required=True, metadata={"description": "Id of the member."})
    given_at = fields.AwareDateTime(required=True)
    expires_at = fields.AwareDateTime(allow_none=True)
    fields_ = fields.List(
        fields.String(
            validate=[validate.Length(max=FIELD_NAME_MAX), matches(FIELD_NAME, NOT_A_FIELD_NAME)]
        ),
        data_key="fields",
        attribute="fields",
        load_default=list,
        validate=[validate.Length(max=CONSENT_FIELDS_MAX), unique],
        metadata={"description": "Names of the case fields that may travel; none by default."},
    )

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        if data["given_at"] > datetime.now(UTC) + CLOCK_SKEW:
            errors["given_at"] = [IN_THE_FUTURE]
        expires = data.get("expires_at")
        if expires is not None and expires <= data["given_at"]:
            errors["expires_at"] = [EXPIRES_BEFORE_GIVEN]
        if data["purpose"] is ConsentPurpose.RESETTLEMENT_SUBMISSION and not all(
            is_destination_country(r) for r in data["recipients"]
        ):
            errors["recipients"] = [NOT_A_DESTINATION]
        if errors:
            raise ValidationError(errors)


class HandoffIn(StrictSchema):
    """Ask to hand the case to another office, or to a registered partner organisation."""

    kind = enum_in(HandoffKind, "office or partner.", required=True)
    office = fields.String(validate=OFFICE_CODE, metadata={"example": "irb-02"})
    partner = fields.String(validate=matches(IDENTIFIER, NOT_AN_IDENTIFIER))

    @validates_schema
    def _one_target(self, data: dict[str, Any], **_: Any) -> None:
        wanted = "office" if data["kind"] is HandoffKind.OFFICE else "partner"
        other = "partner" if wanted == "office" else "office"
        errors: dict[str, list[str]] = {}
        if wanted not in data:
            errors[wanted] = [KIND_NEEDS.format(kind=data["kind"].value, field=wanted)]
        if other in data:
            errors[other] = [NOT_FOR_KIND]
        if errors:
            raise ValidationError(errors)


def _x25519(value: str) -> None:
    try:
        load_partner_public_key(_decode(value))
    except (ValidationError, PackageError, ValueError):
        raise ValidationError(NOT_AN_X25519_KEY) from None


def _ed25519(value: str) -> None:
    raw = _decode(value)
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise ValidationError(NOT_AN_ED25519_KEY) from None


def _enum_out(enum: Any, description: str) -> fields.String:
    return fields.String(
        validate=validate.OneOf([m.value for m in enum]), metadata={"description": description}
    )


# --- consent ------------------------------------------------------------------------------


class ConsentOut(Schema):
    """One consent record, decrypted; ``valid`` says whether it counts now."""

    id = fields.UUID(required=True)
    purpose = _enum_out(ConsentPurpose, "What the data may be used for.")
    recipients = fields.List(fields.String(), required=True)
    given_by = fields.UUID(required=True, metadata={"description": "Id of the member."})
    given_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(allow_none=True, required=True)
    fields_ = fields.List(fields.String(), data_key="fields", attribute="fields", required=True)
    withdrawn_at = fields.DateTime(allow_none=True, required=True)
    valid = fields.Boolean(
        required=True, metadata={"description": "Neither withdrawn nor expired, and in force."}
    )


class ConsentListOut(Schema):
    items = fields.List(fields.Nested(ConsentOut), required=True)


# --- partners -----------------------------------------------------------------------------


class PartnerCreateIn(StrictSchema):
    """A partner organisation and its keys; the codes and fingerprints are read back."""

    code = fields.String(required=True, validate=PARTNER_CODE, metadata={"example": "unhcr-jo"})
    name = Text(max_length=200, required=True)
    public_key = fields.String(
        required=True,
        validate=[_B64_KEY, _x25519],
        metadata={"description": "X25519 public key that packages are sealed to (base64)."},
    )
    verify_key = fields.String(
        allow_none=True,
        validate=[_B64_KEY, _ed25519],
        metadata={
            "description": "Ed25519 key that signs packages the partner sends us (base64); "
            "needed only to import from them."
        },
    )


class PartnerOut(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    public_key = fields.String(required=True)
    public_key_fingerprint = fields.String(
        required=True, metadata={"description": "SHA-256 of the key, to compare aloud."}
    )
    verify_key = fields.String(allow_none=True, required=True)
    active = fields.Boolean(required=True)
    version = fields.Integer(required=True, metadata={"description": "The ETag's version."})
    created_at = fields.DateTime(required=True)


class PartnerPageOut(Schema):
    items = fields.List(fields.Nested(PartnerOut), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


# --- hand-offs ----------------------------------------------------------------------------


class HandoffOut(Schema):
    """A hand-off as both offices see it: no personal data, only codes, ids and times."""

    id = fields.UUID(required=True)
    reference = fields.String(required=True, metadata={"description": "The case reference."})
    case_version = fields.Integer(
        required=True,
        metadata={
            "description": 'The case\'s version: send If-Match "v<case_version>" to take the '
            "next step (the receiving office cannot read the case before accepting it)."
        },
    )
    kind = _enum_out(HandoffKind, "office or partner.")
    status = _enum_out(RECORD_STATUSES, "Where the hand-off stands.")
    from_office = fields.String(required=True)
    to_office = fields.String(allow_none=True, required=True)
    partner = fields.String(allow_none=True, required=True)
    requested_by = fields.String(required=True)
    requested_at = fields.DateTime(required=True)
    approved_by = fields.String(allow_none=True, required=True)
    approved_at = fields.DateTime(allow_none=True, required=True)
    closed_at = fields.DateTime(allow_none=True, required=True)
    package_available = fields.Boolean(
        required=True, metadata={"description": "A partner package waits for its one download."}
    )


class HandoffPageOut(Schema):
    items = fields.List(fields.Nested(HandoffOut), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class HandoffListArgs(PageArgs):
    """Hand-offs from and to your office, newest first."""
