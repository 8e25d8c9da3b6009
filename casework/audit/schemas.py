"""The auditor API contract. Request schemas reject unknown fields.

Hashes are lowercase hex, as in the export; times in entries are the export's
``YYYY-MM-DDTHH:MM:SS.ffffffZ``. Nothing here carries personal data: entries
hold ids, roles, random case references and field *names*.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from casework.audit.actions import AuditAction, Outcome
from casework.pagination import PageArgs

HEX_HASH = {"description": "SHA-256, 64 lowercase hex digits.", "example": "ab" * 32}


class EntrySchema(Schema):
    """One access-log entry, exactly as the export carries it (less ``kind``)."""

    seq = fields.Integer(required=True, metadata={"description": "Gapless, from 1."})
    at = fields.String(
        required=True,
        metadata={"description": "UTC, YYYY-MM-DDTHH:MM:SS.ffffffZ (the hashed time)."},
    )
    actor = fields.String(required=True, allow_none=True, metadata={"description": "User id."})
    role = fields.String(required=True, allow_none=True)
    office = fields.String(required=True, allow_none=True)
    device = fields.String(required=True, allow_none=True)
    action = fields.String(required=True, metadata={"example": "case.read"})
    target = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Case reference or other id; never a name."},
    )
    fields_ = fields.List(
        fields.String(),
        required=True,
        data_key="fields",
        attribute="fields",
        metadata={"description": "Names of the fields touched, never their values."},
    )
    outcome = fields.String(required=True, metadata={"example": "success"})
    request_id = fields.String(required=True, allow_none=True)
    prev_hash = fields.String(required=True, metadata=HEX_HASH)
    hash = fields.String(required=True, metadata=HEX_HASH)


class EventFilterArgs(PageArgs):
    """Filters of the event list; all optional, combined with AND."""

    class Meta:
        unknown = RAISE

    actor = fields.String(validate=validate.Length(min=1, max=64))
    target = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "A case reference: who looked at this case?"},
    )
    action = fields.String(validate=validate.OneOf([action.value for action in AuditAction]))
    outcome = fields.String(validate=validate.OneOf([outcome.value for outcome in Outcome]))
    since = fields.AwareDateTime(
        metadata={"description": "ISO-8601 with offset; entries at or after this time."}
    )
    until = fields.AwareDateTime(
        metadata={"description": "ISO-8601 with offset; entries before this time."}
    )

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if "since" in data and "until" in data and data["since"] >= data["until"]:
            raise ValidationError("Must be later than since.", field_name="until")


class EventPageSchema(Schema):
    items = fields.List(fields.Nested(EntrySchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class VerifyResultSchema(Schema):
    """The verifier's verdict on the stored log."""

    ok = fields.Boolean(required=True)
    entries = fields.Integer(required=True, metadata={"description": "Entries that passed."})
    checkpoints = fields.Integer(
        required=True, metadata={"description": "Signed checkpoints matched against the log."}
    )
    first_bad_seq = fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "The first seq at which the log stops being the signed history."},
    )
    reason = fields.String(required=True, metadata={"description": '"ok", or what failed.'})
    kind = fields.String(
        metadata={"description": "full (CLI or job) or incremental (extended by this call)."}
    )
    from_size = fields.Integer(metadata={"description": "Where this verification started."})
    size = fields.Integer(metadata={"description": "The log size verified up to."})
    verified_at = fields.String(metadata={"description": "UTC time of this outcome."})


class PublicKeySchema(Schema):
    """What an auditor pins to verify checkpoints offline."""

    algorithm = fields.String(required=True, metadata={"example": "ed25519"})
    origin = fields.String(required=True, metadata={"description": "The checkpoints' origin line."})
    key_name = fields.String(required=True)
    public_key = fields.String(
        required=True, metadata={"description": "The raw 32-byte Ed25519 key, standard base64."}
    )
    verifier_key = fields.String(
        required=True,
        metadata={"description": "C2SP signed-note verifier key: <name>+<key id>+<base64 key>."},
    )


class CheckpointRequestSchema(Schema):
    """No options: a checkpoint covers the whole log as it stands; the body may be omitted."""

    class Meta:
        unknown = RAISE


class CosignatureInfoSchema(Schema):
    name = fields.String(required=True, metadata={"description": "The witness's key name."})
    time = fields.Integer(
        required=True, metadata={"description": "Cosignature time, seconds since the epoch."}
    )


class CheckpointSchema(Schema):
    size = fields.Integer(required=True, metadata={"description": "Covers seq 1..size."})
    root = fields.String(required=True, metadata=HEX_HASH)
    signed_at = fields.String(required=True, metadata={"description": "UTC signing time."})
    note = fields.String(
        required=True,
        metadata={
            "description": "The C2SP signed checkpoint note: the log's signature line(s), "
            "then one line per witness cosignature (C2SP tlog-cosignature)."
        },
    )
    cosignatures = fields.List(fields.Nested(CosignatureInfoSchema), required=True)


class LatestCheckpointArgs(Schema):
    class Meta:
        unknown = RAISE

    cosigned = fields.Boolean(
        load_default=False,
        metadata={"description": "The latest checkpoint with at least one cosignature."},
    )


class KeySchema(Schema):
    vkey = fields.String(required=True, metadata={"description": "C2SP verifier key."})
    key_id = fields.String(required=True, metadata={"description": "4-byte key id, hex."})
    from_size = fields.Integer(
        required=True, metadata={"description": "Signs checkpoints of this size and larger."}
    )
    statement = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Rotation statement signed by the previous key and this one."},
    )


class KeysSchema(Schema):
    keys = fields.List(fields.Nested(KeySchema), required=True)


class WitnessRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    vkey = fields.String(
        required=True,
        validate=validate.Length(min=1, max=256),
        metadata={"description": "The witness's C2SP vkey (signature type 0x04)."},
    )


class WitnessSchema(Schema):
    name = fields.String(required=True)
    vkey = fields.String(required=True)


class CosignatureRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    size = fields.Integer(required=True, validate=validate.Range(min=0, max=2**63 - 1))
    cosignature = fields.String(
        required=True,
        validate=validate.Length(min=1, max=512),
        metadata={"description": "The signature line, C2SP tlog-cosignature v1."},
    )


class CosignatureSchema(Schema):
    size = fields.Integer(required=True)
    name = fields.String(required=True)
    time = fields.Integer(required=True)


class ProofSchema(Schema):
    """An entry, its audit path and the signed checkpoint the path leads to."""

    entry = fields.Nested(EntrySchema, required=True)
    leaf_index = fields.Integer(required=True, metadata={"description": "seq - 1."})
    tree_size = fields.Integer(required=True, metadata={"description": "The checkpoint's size."})
    audit_path = fields.List(
        fields.String(metadata=HEX_HASH),
        required=True,
        metadata={"description": "RFC 6962 audit path, nearest sibling first."},
    )
    checkpoint = fields.String(
        required=True, metadata={"description": "The signed checkpoint note of size tree_size."}
    )


class ConsistencyArgs(Schema):
    """Two tree sizes: a verifier holding a checkpoint of ``from`` asks for ``to``."""

    class Meta:
        unknown = RAISE

    from_ = fields.Integer(
        required=True,
        data_key="from",
        validate=validate.Range(min=0, max=2**63 - 1),
        metadata={"description": "The older tree size."},
    )
    to = fields.Integer(
        required=True,
        validate=validate.Range(min=0, max=2**63 - 1),
        metadata={"description": "The newer tree size, at most the latest checkpoint's."},
    )

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if "from_" in data and "to" in data and data["from_"] > data["to"]:
            raise ValidationError("Must not be smaller than from.", field_name="to")


class ConsistencySchema(Schema):
    from_ = fields.Integer(required=True, data_key="from", attribute="from")
    to = fields.Integer(required=True)
    proof = fields.List(
        fields.String(metadata=HEX_HASH),
        required=True,
        metadata={"description": "RFC 6962 / RFC 9162 consistency proof, as hex hashes."},
    )
