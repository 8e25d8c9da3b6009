"""Permissions as data: one enum, one role -> permissions table.

Code checks permissions, never role names. ``docs/permissions.md`` is generated
from this table and a test keeps the two equal.
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    """What a principal may do; object scope (office) is checked separately."""

    OFFICES_READ = "offices:read"
    OFFICES_WRITE = "offices:write"
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    DEVICES_MANAGE = "devices:manage"
    KEYS_MANAGE = "keys:manage"
    CASES_CREATE = "cases:create"
    CASES_READ = "cases:read"
    CASES_WRITE = "cases:write"
    CASES_SEARCH = "cases:search"
    CASES_HISTORY = "cases:history"
    CASES_CLOSE = "cases:close"
    CASES_ERASE = "cases:erase"
    ALERTS_READ = "alerts:read"
    VETTING_CONDUCT = "vetting:conduct"
    VETTING_DECIDE = "vetting:decide"
    MEDICAL_READ = "medical:read"
    DETERMINATION_ASSESS = "determination:assess"
    DETERMINATION_DECIDE = "determination:decide"
    RESETTLEMENT_PREPARE = "resettlement:prepare"
    RESETTLEMENT_REVIEW = "resettlement:review"
    HANDOFF_REQUEST = "handoff:request"
    HANDOFF_APPROVE = "handoff:approve"
    HANDOFF_ACCEPT = "handoff:accept"
    CONSENT_RECORD = "consent:record"
    WORKFLOW_READ = "workflow:read"
    AUDIT_READ = "audit:read"
    AUDIT_CHECKPOINT = "audit:checkpoint"
    SYNC_PULL = "sync:pull"
    SYNC_PUSH = "sync:push"
    SELF = "self"


P = Permission

_CASEWORKER = frozenset(
    {
        P.SELF,
        P.WORKFLOW_READ,
        P.CASES_CREATE,
        P.CASES_READ,
        P.CASES_WRITE,
        P.CASES_SEARCH,
        P.CASES_HISTORY,
        P.CONSENT_RECORD,
        P.RESETTLEMENT_PREPARE,
        P.HANDOFF_REQUEST,
        P.DETERMINATION_ASSESS,
    }
)
_VETTING_OFFICER = _CASEWORKER | {P.VETTING_CONDUCT, P.ALERTS_READ, P.MEDICAL_READ}
_SUPERVISOR = _VETTING_OFFICER | {
    P.VETTING_DECIDE,
    P.DETERMINATION_DECIDE,
    P.RESETTLEMENT_REVIEW,
    P.HANDOFF_APPROVE,
    P.HANDOFF_ACCEPT,
    P.CASES_CLOSE,
    P.CASES_ERASE,
}

ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    # Runs the service: offices, users, devices, keys. No case contents.
    "admin": frozenset(
        {
            P.SELF,
            P.OFFICES_READ,
            P.OFFICES_WRITE,
            P.USERS_READ,
            P.USERS_WRITE,
            P.DEVICES_MANAGE,
            P.KEYS_MANAGE,
            P.AUDIT_CHECKPOINT,
            P.WORKFLOW_READ,
        }
    ),
    "caseworker": _CASEWORKER,
    "vetting_officer": _VETTING_OFFICER,
    "supervisor": _SUPERVISOR,
    # Reads and verifies the access log; sees no case.
    "auditor": frozenset({P.SELF, P.AUDIT_READ, P.AUDIT_CHECKPOINT}),
    # An enrolled field-office sync client (signed requests, no password).
    "device": frozenset({P.SYNC_PULL, P.SYNC_PUSH}),
}

ROLES = tuple(ROLE_PERMISSIONS)
# Roles whose users belong to no office (they see no case, so need no scope).
OFFICELESS_ROLES = frozenset({"admin", "auditor"})


def permissions_for(role: str) -> frozenset[Permission]:
    """The permissions of ``role``; an unknown role has none (deny by default)."""
    return ROLE_PERMISSIONS.get(role, frozenset())
