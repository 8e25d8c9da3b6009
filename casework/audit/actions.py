"""What the access log can say happened: one enum, so entries are comparable."""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    """Actions recorded in the access log (``<area>.<verb>``)."""

    CASE_CREATE = "case.create"
    CASE_READ = "case.read"
    CASE_UPDATE = "case.update"
    CASE_LIST = "case.list"
    CASE_SEARCH = "case.search"
    CASE_HISTORY = "case.history"
    CASE_DUPLICATES = "case.duplicates"
    CASE_TRANSITION = "case.transition"
    CASE_CLOSE = "case.close"
    CASE_REOPEN = "case.reopen"
    CASE_SHRED = "case.shred"
    ALERT_RAISE = "alert.raise"
    ALERT_READ = "alert.read"
    ALERT_REVIEW = "alert.review"
    CONSENT_RECORD = "consent.record"
    CONSENT_WITHDRAW = "consent.withdraw"
    HANDOFF_REQUEST = "handoff.request"
    HANDOFF_APPROVE = "handoff.approve"
    HANDOFF_ACCEPT = "handoff.accept"
    HANDOFF_DECLINE = "handoff.decline"
    HANDOFF_REVOKE = "handoff.revoke"
    HANDOFF_EXPORT = "handoff.export"
    HANDOFF_IMPORT = "handoff.import"
    AUTH_LOGIN = "auth.login"
    AUTH_LOGIN_FAILED = "auth.login_failed"
    AUTH_LOCKED = "auth.locked"
    AUTH_LOGOUT = "auth.logout"
    AUTH_TOKEN_REJECTED = "auth.token_rejected"  # noqa: S105 - an action name
    AUTH_MFA_ENROL = "auth.mfa_enrol"
    AUTH_MFA_CONFIRM = "auth.mfa_confirm"
    AUTHZ_DENIED = "authz.denied"
    USER_CREATE = "user.create"
    USER_READ = "user.read"
    USER_UPDATE = "user.update"
    USER_ROLE_CHANGE = "user.role_change"
    USER_DISABLE = "user.disable"
    USER_PASSWORD_RESET = "user.password_reset"  # noqa: S105 - an action name
    USER_MFA_RESET = "user.mfa_reset"
    OFFICE_CREATE = "office.create"
    OFFICE_READ = "office.read"
    OFFICE_UPDATE = "office.update"
    DEVICE_ENROL = "device.enrol"
    DEVICE_REVOKE = "device.revoke"
    SYNC_PULL = "sync.pull"
    SYNC_PUSH = "sync.push"
    KEYS_ROTATE = "keys.rotate"
    KEYS_RETIRE = "keys.retire"
    KEYS_REINDEX = "keys.reindex"
    AUDIT_READ = "audit.read"
    AUDIT_EXPORT = "audit.export"
    AUDIT_VERIFY = "audit.verify"
    AUDIT_CHECKPOINT = "audit.checkpoint"
    AUDIT_PROOF = "audit.proof"


class Outcome(StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    FAILURE = "failure"
