"""The identity settings of the running service, read from the validated configuration."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask, current_app

from casework.auth.passwords import PasswordParams
from casework.auth.throttle import ThrottlePolicy
from casework.authz.permissions import (
    OFFICELESS_ROLES,
    ROLE_PERMISSIONS,
    STAFF_ROLES,
    Permission,
    permissions_for,
)
from casework.config import ConfigError

#: Roles that use TOTP whatever the configuration says: every staff role that can read
#: decrypted case data (derived from the permission table, so a new such role is
#: covered), and every role bound to no office (administrator, auditor, integrity
#: officer ...), which reach across all offices.
#: ``mfa_required_roles`` may add roles to these, never take one away; only an office's
#: audited ``mfa_exempt`` spares that office's staff.
DEFAULT_MFA_ROLES = frozenset(
    {role for role in STAFF_ROLES if Permission.CASES_READ in permissions_for(role)}
    | OFFICELESS_ROLES
)


def _settings(app: Flask | None = None) -> dict[str, Any]:
    found: dict[str, Any] = (app or current_app).config["CASEWORK"]
    return found


def password_params(app: Flask | None = None) -> PasswordParams:
    """The argon2id costs to hash with; below OWASP's floor only while TESTING.

    Checked on use rather than at start-up because the test suite builds its
    application first and marks it TESTING afterwards. Raises ConfigError.
    """
    application = app or current_app
    settings = _settings(application)
    params = PasswordParams(
        memory_kib=settings["password_hash_memory_kib"],
        time_cost=settings["password_hash_time_cost"],
    )
    if not params.meets_owasp_minimum() and not application.testing:
        raise ConfigError(
            "password_hash_memory_kib and password_hash_time_cost are below OWASP's "
            "argon2id minimum (19456 KiB, 2 passes); allowed only in tests"
        )
    return params


def throttle_policy(app: Flask | None = None) -> ThrottlePolicy:
    settings = _settings(app)
    return ThrottlePolicy(
        max_failures=settings["login_max_failures"],
        window=timedelta(minutes=settings["login_failure_window_minutes"]),
    )


def token_idle(app: Flask | None = None) -> timedelta:
    return timedelta(minutes=_settings(app)["token_idle_minutes"])


def token_lifetime(app: Flask | None = None) -> timedelta:
    return timedelta(hours=_settings(app)["token_absolute_hours"])


def enrolment_window(app: Flask | None = None) -> timedelta:
    """How long a token good only for MFA enrolment lives: password-only access, kept short."""
    return timedelta(minutes=_settings(app)["mfa_enrolment_minutes"])


def mfa_roles(app: Flask | None = None) -> frozenset[str]:
    """The roles that must use TOTP: the defaults and whatever the configuration adds."""
    return DEFAULT_MFA_ROLES | frozenset(_settings(app)["mfa_required_roles"])


def mfa_required(role: str, app: Flask | None = None) -> bool:
    """Whether ``role`` must use TOTP (outside an exempt office)."""
    return role in mfa_roles(app)


def mfa_required_for(
    role: str, office_exempt: bool, enrolment_due: bool = False, app: Flask | None = None
) -> bool:
    """Whether a user must hold a second factor: their role requires it and their office is
    not exempt, or an administrator's MFA reset made enrolment due."""
    return enrolment_due or (mfa_required(role, app) and not office_exempt)


def check(app: Flask) -> None:
    """Refuse to start on identity settings that cannot be meant (raises ConfigError)."""
    settings = _settings(app)
    unknown = sorted(set(settings["mfa_required_roles"]) - set(ROLE_PERMISSIONS))
    if unknown:
        raise ConfigError(f"mfa_required_roles names unknown roles: {', '.join(unknown)}")
    for key in (
        "token_idle_minutes",
        "token_absolute_hours",
        "login_max_failures",
        "mfa_enrolment_minutes",
    ):
        if settings[key] < 1:
            raise ConfigError(f"{key} must be at least 1")
    if settings["login_failure_window_minutes"] < 1:
        raise ConfigError("login_failure_window_minutes must be at least 1")
