"""Staff accounts: create, change role, office or state, reset password or MFA.

Services never commit (the request boundary or the CLI does). Every change is
recorded in the access log in the same transaction; a change of role or
office, a disabled account, a password or MFA reset all end the user's
sessions at once, because the permissions they were granted no longer hold.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from casework import audit
from casework.audit import AuditAction
from casework.auth import settings
from casework.auth.mfa import clear_mfa, reset_code
from casework.auth.models import LoginThrottle, User
from casework.auth.passwords import hash_password, policy_violations
from casework.auth.sessions import normalise_username, revoke_user_tokens
from casework.auth.throttle import ThrottleKeys
from casework.authz.permissions import (
    OFFICELESS_ROLES,
    STAFF_ROLES,
    Permission,
    permissions_for,
)
from casework.errors import Conflict, NotFound, ValidationFailed
from casework.offices.models import Office
from casework.pagination import keyset_page
from casework.security.app import derived_secret
from casework.timestamps import utcnow

FIRST_ADMIN = "admin"  # the username, and the role, of the account `casework init` creates


def _invalid(field: str, *messages: str) -> ValidationFailed:
    return ValidationFailed(errors={"json": {field: list(messages)}})


def get_user(session: Session, user_id: uuid.UUID, *, for_update: bool = False) -> User:
    """The user ``user_id``; raises NotFound."""
    query = select(User).where(User.id == user_id)
    if for_update:
        query = query.with_for_update(of=User)
    user = session.scalar(query)
    if user is None:
        raise NotFound("No such user.")
    return user


def read_user(session: Session, user_id: uuid.UUID) -> User:
    """The user ``user_id``, the read recorded; raises NotFound."""
    user = get_user(session, user_id)
    audit.record(AuditAction.USER_READ, target=str(user.id), session=session)
    return user


def list_users(
    session: Session, limit: int | None, cursor: str | None
) -> tuple[Sequence[User], str | None]:
    return keyset_page(session, select(User), User.username, limit, cursor)


def check_password(password: str, username: str) -> None:
    """Raise ValidationFailed (on ``password``) listing every policy rule it breaks."""
    violations = policy_violations(password, username)
    if violations:
        raise _invalid("password", *(f"The password {v.value}." for v in violations))


def _check_assignment(session: Session, role: str, office_code: str | None) -> None:
    """A role the table knows, and an office exactly when the role needs one (active)."""
    if role not in STAFF_ROLES:
        raise _invalid("role", "Unknown role.")
    if role in OFFICELESS_ROLES:
        if office_code is not None:
            raise _invalid("office", f"A {role} belongs to no office; send null.")
        return
    if office_code is None:
        raise _invalid("office", f"A {role} needs an office.")
    office = session.get(Office, office_code)
    if office is None or not office.is_active:
        raise _invalid("office", "No such active office.")


def create_user(
    session: Session, *, username: str, password: str, role: str, office_code: str | None
) -> User:
    """Create an active account; raises ValidationFailed or Conflict (username taken)."""
    username = normalise_username(username)
    _check_assignment(session, role, office_code)
    check_password(password, username)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict("This username is taken.")
    user = User(
        username=username,
        role=role,
        office_code=office_code,
        password_hash=hash_password(password, settings.password_params()),
    )
    try:
        with session.begin_nested():  # flush for the id; a concurrent duplicate fails alone
            session.add(user)
    except IntegrityError:
        raise Conflict("This username is taken.") from None
    audit.record(
        AuditAction.USER_CREATE,
        target=str(user.id),
        fields=["username", "password", "role", "office"],
        session=session,
    )
    return user


def update_user(session: Session, user: User, changes: dict[str, Any]) -> User:
    """Apply ``role``, ``office`` and ``active`` from ``changes`` (API field names).

    Raises ValidationFailed for an impossible assignment and Conflict when the
    change would leave no active administrator.
    """
    role = changes.get("role", user.role)
    office_code = changes.get("office", user.office_code)
    active = changes.get("active", user.is_active)
    if (role, office_code) != (user.role, user.office_code):
        _check_assignment(session, role, office_code)
    _keep_an_administrator(session, user, role, active)
    role_changed, office_changed = role != user.role, office_code != user.office_code
    disabled, enabled = user.is_active and not active, active and not user.is_active
    if not (role_changed or office_changed or disabled or enabled):
        return user
    user.role, user.office_code, user.is_active = role, office_code, active
    user.version += 1
    if role_changed or office_changed or disabled:
        revoke_user_tokens(session, user.id)
    _record_update(session, user, role_changed, office_changed, disabled, enabled)
    session.flush()
    return user


def _record_update(
    session: Session,
    user: User,
    role_changed: bool,
    office_changed: bool,
    disabled: bool,
    enabled: bool,
) -> None:
    target = str(user.id)
    if role_changed:
        audit.record(AuditAction.USER_ROLE_CHANGE, target=target, fields=["role"], session=session)
    if disabled:
        audit.record(AuditAction.USER_DISABLE, target=target, fields=["active"], session=session)
    other = [name for name, flag in (("office", office_changed), ("active", enabled)) if flag]
    if other:
        audit.record(AuditAction.USER_UPDATE, target=target, fields=other, session=session)


def _keep_an_administrator(session: Session, user: User, role: str, active: bool) -> None:
    """Refuse to demote or disable the last active holder of users:write."""

    def manages_users(r: str) -> bool:
        return Permission.USERS_WRITE in permissions_for(r)

    losing = user.is_active and manages_users(user.role) and not (active and manages_users(role))
    if not losing:
        return
    managing_roles = [r for r in STAFF_ROLES if manages_users(r)]
    others = session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role.in_(managing_roles), User.is_active.is_(True), User.id != user.id)
    )
    if not others:
        raise Conflict("This is the last active administrator; appoint another first.")


def reset_password(session: Session, user: User, password: str) -> None:
    """Set a new password, end the user's sessions and lift a lock-out of the account."""
    check_password(password, user.username)
    user.password_hash = hash_password(password, settings.password_params())
    user.password_changed_at = utcnow()
    user.version += 1
    revoke_user_tokens(session, user.id)
    account_key = ThrottleKeys(derived_secret("auth/throttle")).account(user.username)
    session.execute(delete(LoginThrottle).where(LoginThrottle.key == account_key))
    audit.record(
        AuditAction.USER_PASSWORD_RESET, target=str(user.id), fields=["password"], session=session
    )


def reset_mfa(session: Session, user: User) -> str:
    """Remove the user's TOTP seed (a lost phone), end their sessions, return the enrolment code.

    Their next password login must enrol again, even in an office exempt from MFA:
    the reset is the moment a stranger could have taken the account over. The
    enrolment needs the returned code (see :func:`casework.auth.mfa.reset_code`),
    so a stranger holding only the password cannot enrol first.
    """
    clear_mfa(user)
    user.mfa_enrolment_due = True
    user.version += 1
    revoke_user_tokens(session, user.id)
    audit.record(AuditAction.USER_MFA_RESET, target=str(user.id), fields=["mfa"], session=session)
    return reset_code(user)


def generate_password() -> str:
    """A random password that passes the policy (about 143 bits)."""
    while True:
        candidate = secrets.token_urlsafe(18)
        if not policy_violations(candidate, FIRST_ADMIN):
            return candidate


def ensure_first_admin(session: Session, password: str) -> User | None:
    """Create the account ``admin`` unless it exists; return it, or None when it existed."""
    if session.scalar(select(User.id).where(User.username == FIRST_ADMIN)) is not None:
        return None
    return create_user(
        session, username=FIRST_ADMIN, password=password, role=FIRST_ADMIN, office_code=None
    )


def describe_actor(session: Session, key: str) -> dict[str, Any] | None:
    """A staff account as the access log's auditors may know it, by id or username: the
    username, role, office and whether it is active, nothing else. None when no account
    has that id or name."""
    try:
        user = session.get(User, uuid.UUID(key))
    except ValueError:
        user = session.scalar(select(User).where(User.username == key))
    if user is None:
        return None
    return {
        "id": str(user.id),
        "kind": "user",
        "username": user.username,
        "role": user.role,
        "office": user.office_code,
        "active": user.is_active,
    }
