"""Permissions as data: one enum, one role -> permissions table.

Code checks permissions, never role names. ``docs/permissions.md`` is generated
from this table by :func:`render_markdown`, and a test keeps the two equal.
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
    ALERTS_CROSS_OFFICE = "alerts:cross-office"
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
    PARTNERS_MANAGE = "partners:manage"
    WORKFLOW_READ = "workflow:read"
    AUDIT_READ = "audit:read"
    AUDIT_CHECKPOINT = "audit:checkpoint"
    SYNC_PULL = "sync:pull"
    SYNC_PUSH = "sync:push"
    REPORTS_READ = "reports:read"
    REPORTS_ALL_OFFICES = "reports:all-offices"
    RETENTION_MANAGE = "retention:manage"
    CASES_HOLD = "cases:hold"
    SELF = "self"
    CODES_READ = "codes:read"


P = Permission

_CASEWORKER = frozenset(
    {
        P.SELF,
        P.CODES_READ,
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
        P.SYNC_PULL,
        P.SYNC_PUSH,
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
    P.CASES_HOLD,
    # Anonymised statistics of their own office (small cells suppressed).
    P.REPORTS_READ,
}

ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    # Runs the service: offices, users, devices, keys. No case contents.
    "admin": frozenset(
        {
            P.SELF,
            P.CODES_READ,
            P.OFFICES_READ,
            P.OFFICES_WRITE,
            P.USERS_READ,
            P.USERS_WRITE,
            P.DEVICES_MANAGE,
            P.KEYS_MANAGE,
            P.AUDIT_CHECKPOINT,
            P.WORKFLOW_READ,
            # Partners are trust anchors of the whole deployment (where case data may go),
            # kept apart from the supervisors who approve sending: nobody does both alone.
            P.PARTNERS_MANAGE,
            # Proposes and approves the retention policy: two administrators, four eyes.
            P.RETENTION_MANAGE,
        }
    ),
    "caseworker": _CASEWORKER,
    "vetting_officer": _VETTING_OFFICER,
    "supervisor": _SUPERVISOR,
    # Reads and verifies the access log; sees no case.
    "auditor": frozenset({P.SELF, P.CODES_READ, P.AUDIT_READ, P.AUDIT_CHECKPOINT}),
    # Reviews possible duplicates across offices (impostor detection): sees each alert's
    # two references and offices, never a case's contents; belongs to no office.
    "integrity_officer": frozenset({P.SELF, P.CODES_READ, P.ALERTS_READ, P.ALERTS_CROSS_OFFICE}),
    # Anonymised statistics of every office in aggregate; sees no case.
    "analyst": frozenset({P.SELF, P.CODES_READ, P.REPORTS_READ, P.REPORTS_ALL_OFFICES}),
    # An enrolled field-office sync client on its own: a signed request without a
    # caseworker's device-bound token reads the code lists (no personal data) and
    # nothing else; it acts on cases only for a signed-in person.
    "device": frozenset({P.CODES_READ}),
}

ROLES = tuple(ROLE_PERMISSIONS)
# Roles whose users belong to no office (they see no case, so need no scope).
OFFICELESS_ROLES = frozenset({"admin", "auditor", "integrity_officer", "analyst"})
# Roles a staff account (username and password) may hold; devices enrol instead.
STAFF_ROLES = tuple(role for role in ROLES if role != "device")

ROLE_SUMMARIES: dict[str, str] = {
    "admin": (
        "Runs the service: offices, users, devices, keys, partner organisations. "
        "Sees no case contents."
    ),
    "caseworker": "Intake; reads and edits the cases of their own office.",
    "vetting_officer": "A caseworker who also conducts interviews and screening.",
    "supervisor": "Everything in their office, plus the second-person (four-eyes) decisions.",
    "auditor": "Reads and verifies the access log; sees no case.",
    "integrity_officer": (
        "Reviews possible duplicates that span offices (impostor detection): sees both "
        "cases' reference and office in the alert, never a case's contents."
    ),
    "analyst": (
        "Reads anonymised statistics of all offices in aggregate (small cells suppressed); "
        "sees no case."
    ),
    "device": (
        "An enrolled field-office sync client; on its own it reads only the code lists, "
        "it acts for a signed-in caseworker of its office."
    ),
}

PERMISSION_SUMMARIES: dict[Permission, str] = {
    P.OFFICES_READ: "list and read field offices",
    P.OFFICES_WRITE: "create offices, rename, deactivate, exempt an office's staff from MFA",
    P.USERS_READ: "list and read staff accounts",
    P.USERS_WRITE: "create accounts; change role, office, active; reset password or MFA",
    P.DEVICES_MANAGE: "enrol and revoke field-office sync devices",
    P.KEYS_MANAGE: "rotate and retire encryption keys",
    P.CASES_CREATE: "register a case (intake)",
    P.CASES_READ: "read a case of their office",
    P.CASES_WRITE: "edit a case of their office",
    P.CASES_SEARCH: "search the cases of their office",
    P.CASES_HISTORY: "read a case's change history",
    P.CASES_CLOSE: "close and reopen a case",
    P.CASES_ERASE: "erase a case (crypto-shredding, with a second person)",
    P.ALERTS_READ: "read duplicate alerts within their scope",
    P.ALERTS_CROSS_OFFICE: "read and review duplicate alerts between offices (no case contents)",
    P.VETTING_CONDUCT: "record interviews and screening",
    P.VETTING_DECIDE: "decide vetting (four-eyes)",
    P.MEDICAL_READ: "read medical and screening notes",
    P.DETERMINATION_ASSESS: "prepare a status determination",
    P.DETERMINATION_DECIDE: "decide a status determination (four-eyes)",
    P.RESETTLEMENT_PREPARE: "prepare a resettlement submission",
    P.RESETTLEMENT_REVIEW: "approve a resettlement submission (four-eyes)",
    P.HANDOFF_REQUEST: "ask to hand a case to another office",
    P.HANDOFF_APPROVE: "approve a hand-off (four-eyes)",
    P.HANDOFF_ACCEPT: "accept or decline a case handed to their office",
    P.CONSENT_RECORD: "record and withdraw consent",
    P.PARTNERS_MANAGE: "register, list and deactivate partner organisations and their keys",
    P.WORKFLOW_READ: "read the workflow definitions (no case data)",
    P.AUDIT_READ: "query the access log",
    P.AUDIT_CHECKPOINT: "read, verify and export signed checkpoints",
    P.SYNC_PULL: "pull their office's change feed (from an enrolled device of the office)",
    P.SYNC_PUSH: "push offline changes (from an enrolled device of the office)",
    P.REPORTS_READ: "run anonymised statistical reports (all offices, or their own office)",
    P.REPORTS_ALL_OFFICES: "run reports over every office, in aggregate or one office at a time",
    P.RETENTION_MANAGE: "propose and approve the retention policy (two administrators)",
    P.CASES_HOLD: "put a case under legal hold, or lift it (stops retention erasing it)",
    P.SELF: (
        "sign in and out, read their own account, enrol in or remove their own MFA "
        "(with their password, and the current code while MFA is on)"
    ),
    P.CODES_READ: "read the code lists and their labels (no case data)",
}


def permissions_for(role: str) -> frozenset[Permission]:
    """The permissions of ``role``; an unknown role has none (deny by default)."""
    return ROLE_PERMISSIONS.get(role, frozenset())


def render_markdown() -> str:
    """``docs/permissions.md``: the role table and the permission matrix, from this module."""
    lines = [
        "# Roles and permissions",
        "",
        "<!-- Generated from casework/authz/permissions.py by render_markdown(); do not edit.",
        "     tests/auth/test_permissions_doc.py fails when the two differ and says how to",
        "     regenerate this file. -->",
        "",
        "Code checks permissions, never role names. A route declares the permissions it",
        "needs (`@requires(...)`); a route without a declaration stops the service at",
        "start-up. Object access also checks the **office scope**: a user sees the objects",
        "of their own office only, and an object outside it answers 404, like a missing one.",
        "Officeless roles ("
        + ", ".join(f"`{r}`" for r in sorted(OFFICELESS_ROLES))
        + ") see no office's cases at all.",
        "",
        "**MFA.** Every staff role that can read decrypted case data, and `admin` and",
        "`auditor`, must use TOTP; configuration (`mfa_required_roles`) may add roles,",
        "never remove these. Only an administrator can exempt an office's staff, through",
        "the audited office field `mfa_exempt`. Enrolling, re-enrolling or removing one's",
        "own MFA needs the password (and the current code while MFA is on); enrolment ends",
        "every other session of the user.",
        "",
        "Duplicate detection compares a new registration with every office, because an",
        "impostor registers where they are not known. What office staff see never depends",
        "on another office: intake and `POST /cases/{reference}/duplicates` list possible",
        "duplicates of their own office only, and `GET /alerts` shows them only alerts",
        "whose two cases are both in their office. Matches between offices are scored",
        "outside office staff's requests (each intake queues the same small job, match or",
        "not) and become alerts that only holders of `alerts:cross-office`",
        "(`integrity_officer`) list and review, with both cases' reference and office.",
        "Their reviews change no case's version or history, so nothing in an office's",
        "answers, content or timing, tells a match in another office from its absence.",
        "",
        "## Roles",
        "",
        "| role | office | summary |",
        "|---|---|---|",
    ]
    for role in ROLES:
        office = "none" if role in OFFICELESS_ROLES else "required"
        lines.append(f"| `{role}` | {office} | {ROLE_SUMMARIES[role]} |")
    lines += ["", "## Permissions by role", ""]
    lines.append("| permission | " + " | ".join(f"`{r}`" for r in ROLES) + " | allows |")
    lines.append("|---" * (len(ROLES) + 2) + "|")
    for permission in Permission:
        marks = ["yes" if permission in ROLE_PERMISSIONS[r] else "" for r in ROLES]
        summary = PERMISSION_SUMMARIES[permission]
        lines.append(f"| `{permission.value}` | " + " | ".join(marks) + f" | {summary} |")
    lines.append("")
    return "\n".join(lines)
