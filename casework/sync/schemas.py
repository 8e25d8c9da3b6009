"""The sync contract as marshmallow schemas (the OpenAPI document is generated from them).

Input schemas reject unknown fields. A pushed mutation's ``changes`` are
validated one mutation at a time by :mod:`casework.sync.push` (with the intake
and PATCH schemas of cases), so that one bad mutation is ``rejected`` with its
field errors while the others are still processed.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from casework.api import StrictSchema, Text
from casework.cases import rules
from casework.cases.schemas import CaseUpdateIn, DuplicateOut, IntakeIn, MemberIn
from casework.sync.codes import Keep, MutationOp, MutationStatus
from casework.sync.pull import DEFAULT_LIMIT, MAX_LIMIT

# --- devices -------------------------------------------------------------------------------


class EnrolmentCodeIn(StrictSchema):
    office = fields.String(required=True, validate=validate.Length(min=1, max=32))
    label = Text(
        max_length=64,
        required=True,
        metadata={"description": 'What the device is ("Laptop 3"); never a person\'s name.'},
    )


class EnrolmentCodeOut(Schema):
    code = fields.String(required=True, metadata={"description": "Shown once; single use."})
    expires_at = fields.DateTime(required=True, metadata={"description": "15 minutes from now."})


class EnrolIn(StrictSchema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=64))
    public_key = fields.String(
        required=True,
        validate=validate.Length(min=43, max=44),
        metadata={"description": "The device's raw 32-byte Ed25519 public key, base64url."},
    )
    proof = fields.String(
        required=True,
        validate=validate.Length(min=86, max=88),
        metadata={
            "description": "base64url Ed25519 signature of the code's UTF-8 bytes with the "
            "new key: the device holds the private key."
        },
    )


class EnrolOut(Schema):
    device_id = fields.UUID(
        required=True, metadata={"description": "The `keyid` of the device's signatures."}
    )
    office = fields.String(required=True)


class DeviceOut(Schema):
    device_id = fields.UUID(required=True, attribute="id")
    office = fields.String(required=True, attribute="office_code")
    label = fields.String(required=True)
    enrolled_at = fields.DateTime(required=True)
    revoked_at = fields.DateTime(required=True, allow_none=True)


class DeviceListOut(Schema):
    items = fields.List(fields.Nested(DeviceOut), required=True)


# --- pull ----------------------------------------------------------------------------------

CURSOR_DESCRIPTION = (
    "Opaque cursor from the previous page; omit it to start from the beginning. It is "
    "authenticated by the server and bound to this device and its office; a cursor from "
    "another device or scope, older than the retained deletions (180 days by default) or "
    "altered answers 409 `urn:casework:problem:resync-required`: start again without one."
)


class ChangesArgs(Schema):
    class Meta:
        unknown = "raise"

    cursor = fields.String(
        load_default=None,
        validate=validate.Length(max=512),
        metadata={"description": CURSOR_DESCRIPTION},
    )
    limit = fields.Integer(
        load_default=DEFAULT_LIMIT,
        validate=validate.Range(min=1, max=MAX_LIMIT),
        metadata={
            "description": f"Changes per page; default {DEFAULT_LIMIT}, at most {MAX_LIMIT}."
        },
    )


class ChangeOut(Schema):
    seq = fields.Integer(required=True, metadata={"description": "Position in commit order."})
    op = fields.String(
        required=True,
        validate=validate.OneOf(["upsert", "delete", "evict"]),
        metadata={
            "description": "`upsert`: store this version of the case; `delete`: the case was "
            "erased; `evict`: it left the office's scope (handed off). Forget the case for both."
        },
    )
    reference = fields.String(required=True)
    version = fields.Integer(required=True)
    case = fields.Dict(
        metadata={
            "description": "For `upsert` only: the case as `GET /api/v1/cases/{reference}` "
            "returns it, less what depends on the caller or the moment (`allowed_transitions`, "
            "`possible_duplicates`, and the sealed workflow outcomes whose visibility depends "
            "on the reader's role); `workflow` holds `states` and `last_active_stage`. "
            "(reference, version) identifies it."
        }
    )


class CheckpointOut(Schema):
    seq = fields.Integer(
        required=True, metadata={"description": "The office's feed position it describes."}
    )
    count = fields.Integer(required=True, metadata={"description": "Cases in the office's scope."})
    checksum = fields.String(
        required=True,
        metadata={
            "description": "Order-independent digest of the (reference, version) pairs in "
            "scope: the XOR of SHA-256 over the ASCII bytes `<reference>:<version>` (e.g. "
            "`K7Q2M9XD4RA:3`) of every case, as 64 lower-case hex digits (64 zeros when the "
            "office has no case). A replica that applied every change up to `seq` has the "
            "same count and checksum."
        },
    )


class ChangesOut(Schema):
    changes = fields.List(fields.Nested(ChangeOut), required=True)
    cursor = fields.String(
        required=True,
        metadata={
            "description": "Store it with the page in one local transaction; send it back to "
            "continue. After the last page (`more` false) it points at `checkpoint.seq`."
        },
    )
    more = fields.Boolean(required=True, metadata={"description": "Another page follows now."})
    checkpoint = fields.Nested(CheckpointOut, required=True)


# --- push ----------------------------------------------------------------------------------


class SyncMemberIn(MemberIn):
    client_ref = fields.UUID(
        required=True, metadata={"description": "Device-chosen id of the new member."}
    )


class SyncIntakeIn(IntakeIn):
    """A create: the intake body of ``POST /api/v1/cases`` plus device-chosen ids."""

    client_ref = fields.UUID(
        required=True, metadata={"description": "Device-chosen id of the new case."}
    )
    members = fields.List(
        fields.Nested(SyncMemberIn),
        required=True,
        validate=validate.Length(min=1, max=rules.MAX_MEMBERS),
    )


class MutationIn(StrictSchema):
    mutation_id = fields.UUID(
        required=True, metadata={"description": "Chosen by the device; the exactly-once key."}
    )
    device_seq = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=1),
        metadata={"description": "1, 2, 3... per device, with no gap."},
    )
    op = fields.Enum(MutationOp, by_value=True, required=True)
    reference = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={
            "description": "update only: the case reference, or the `client_ref` of a case "
            "this device created offline, until it has learned the reference."
        },
    )
    base_version = fields.Integer(
        strict=True,
        validate=validate.Range(min=1),
        metadata={"description": "update only: the case version the device edited."},
    )
    changes = fields.Dict(
        required=True,
        metadata={
            "description": "create: the intake body (`POST /api/v1/cases`) with a `client_ref` "
            "on the case and on each member. update: the body of `PATCH "
            "/api/v1/cases/{reference}`; a member `id` may be a member's `client_ref`."
        },
    )

    @validates_schema
    def _shape(self, data: dict[str, Any], **_: Any) -> None:
        if data["op"] == MutationOp.UPDATE:
            missing = [n for n in ("reference", "base_version") if n not in data]
            if missing:
                raise ValidationError({n: ["Required for an update."] for n in missing})
        else:
            extra = [n for n in ("reference", "base_version") if n in data]
            if extra:
                raise ValidationError({n: ["Only for an update."] for n in extra})


class PushIn(StrictSchema):
    mutations = fields.List(
        fields.Nested(MutationIn), required=True, validate=validate.Length(min=1, max=100)
    )


class MutationResultOut(Schema):
    mutation_id = fields.UUID(required=True)
    status = fields.Enum(
        MutationStatus,
        by_value=True,
        required=True,
        metadata={
            "description": "Final: `applied`, `duplicate` (received before: the stored result), "
            "`conflict` (merged; fields both sides changed wait in `conflict_id`), `rejected` "
            "(see `errors`). Not final: `out_of_order` (resend from `expected_seq`)."
        },
    )
    reference = fields.String(allow_none=True)
    version = fields.Integer(allow_none=True)
    conflict_id = fields.UUID(allow_none=True)
    refs = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        metadata={"description": "create: each `client_ref` -> the case reference or member id."},
    )
    errors = fields.Dict(
        allow_none=True,
        metadata={
            "description": "rejected: `type` (invalid, gone, evicted, not-found, "
            "reused-id, reused-seq) and field errors under `fields`."
        },
    )
    expected_seq = fields.Integer(metadata={"description": "out_of_order: the seq to send next."})
    possible_duplicates = fields.List(
        fields.Nested(DuplicateOut),
        metadata={
            "description": "create (applied, and its duplicate answers): cases of the "
            "device's office that may hold the same people, best first, as `POST /cases` "
            "answers them; creates of one request find each other. Other offices are "
            "compared later, and their matches go to the alert queue, not to the device."
        },
    )


class PushOut(Schema):
    results = fields.List(fields.Nested(MutationResultOut), required=True)
    write_checkpoint = fields.Integer(
        required=True,
        metadata={
            "description": "The feed's seq after this push: once a pull's checkpoint reaches "
            "it, the device's own writes have come back through the feed."
        },
    )


# --- conflicts -----------------------------------------------------------------------------


class ConflictFieldOut(Schema):
    field = fields.String(
        required=True,
        metadata={"description": "`specific_needs`, `members.<id>.<field>` or `members.<id>`."},
    )
    server = fields.Raw(required=True, allow_none=True)
    device = fields.Raw(required=True, allow_none=True)


class ConflictOut(Schema):
    id = fields.UUID(required=True)
    reference = fields.String(required=True)
    device_id = fields.UUID(required=True)
    mutation_id = fields.UUID(required=True)
    base_version = fields.Integer(required=True)
    server_version = fields.Integer(required=True)
    status = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    fields_ = fields.List(fields.Nested(ConflictFieldOut), data_key="fields", required=True)


class ConflictListOut(Schema):
    items = fields.List(fields.Nested(ConflictOut), required=True)
    next_cursor = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Send it as `cursor` for the next page; null after the last."},
    )


class ResolveIn(StrictSchema):
    keep = fields.Enum(Keep, by_value=True, required=True)
    changes = fields.Nested(
        CaseUpdateIn,
        metadata={"description": "merged only: the PATCH body that settles the fields."},
    )

    @validates_schema
    def _merged_needs_changes(self, data: dict[str, Any], **_: Any) -> None:
        if (data["keep"] == Keep.MERGED) != ("changes" in data):
            raise ValidationError({"changes": ["Required with keep=merged, and only then."]})
