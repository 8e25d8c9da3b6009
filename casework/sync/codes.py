"""The vocabulary of field-office sync: operations, statuses and problem types."""

from __future__ import annotations

from enum import StrEnum


class ChangeOp(StrEnum):
    """What a feed entry tells a device to do with one case."""

    UPSERT = "upsert"  # store this (reference, version) of the case
    DELETE = "delete"  # the case was erased: forget it
    EVICT = "evict"  # the case left the office's scope (handed off): forget it


class MutationOp(StrEnum):
    CREATE = "create"
    UPDATE = "update"


class MutationStatus(StrEnum):
    """The result of one pushed mutation; all but ``out_of_order`` are final."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REJECTED = "rejected"
    OUT_OF_ORDER = "out_of_order"


FINAL_STATUSES = frozenset(
    {MutationStatus.APPLIED, MutationStatus.CONFLICT, MutationStatus.REJECTED}
)


class RejectionType(StrEnum):
    """Why a mutation was rejected (``errors["type"]``)."""

    INVALID = "invalid"  # field errors
    GONE = "gone"  # the case was erased
    EVICTED = "evicted"  # the case left the office
    NOT_FOUND = "not-found"  # no such case (or client_ref) for this device
    REUSED_ID = "reused-id"  # the mutation_id was used with another body
    REUSED_SEQ = "reused-seq"  # the device_seq was used by another mutation
    FORBIDDEN = "forbidden"  # the signed-in person may not do this


class ConflictStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class Keep(StrEnum):
    """How a person resolves a conflict."""

    SERVER = "server"
    DEVICE = "device"
    MERGED = "merged"
