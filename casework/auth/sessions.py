"""Signing in and out: password login with throttling, bearer tokens, the authenticator.

Login refuses in one indistinguishable way (401, same body, comparable time)
whether the username is unknown, the password wrong, the account disabled or
the one-time code missing or wrong. Counters of failures are kept per account
and per client address; a locked key is refused (429) before any password is
checked and without counting. Counters and the access-log entries of a refusal
survive the request's rollback (``persist_despite_error``).

An attempt runs in two short transactions with the password check between them,
outside any: the first counts the attempt as a failure and commits
(``db.commit_early``), the second records the outcome, taking the count back on
success. So the argon2id check (a few hundred ms) holds neither SQLite's write
lock nor the counters' row locks, and parallel guesses still cannot overtake
the lock-out: each is counted before any password is checked. An attempt cut
off between the two (a crash) stays counted as a failure.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import NoReturn

from flask import current_app, request
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from casework import audit, db
from casework.audit import Actor, AuditAction, Outcome
from casework.auth import mfa, settings
from casework.auth.mfa import check_code
from casework.auth.models import AccessToken, LoginThrottle, User
from casework.auth.passwords import hash_password, needs_rehash, verify_dummy, verify_password
from casework.auth.throttle import ThrottleKeys, ThrottlePolicy
from casework.auth.tokens import hash_token, looks_like_token, new_token
from casework.auth.totp import TotpError
from casework.authz.access import Principal
from casework.errors import Forbidden, TooManyRequests, Unauthorized, ValidationFailed
from casework.offices.models import Office
from casework.security.app import current_keyring, derived_secret
from casework.security.keyring import Keyring
from casework.timestamps import utcnow

LOGIN_REFUSED = "The username, password or one-time code is not correct."
REAUTH_REFUSED = "The password or one-time code is not correct."
TOKEN_REFUSED = "The bearer token is not valid; sign in again."  # noqa: S105 - a message
# last_used_at is rewritten at most this often: idle expiry needs no finer grain,
# and most requests then read a token without writing it.
TOUCH_INTERVAL = timedelta(minutes=1)
_PURGE_BATCH = 100
_UNKNOWN_ADDRESS = "0.0.0.0"  # noqa: S104 - a throttle key, not a bind address


class ReauthenticationFailed(Forbidden):
    """The password (or code) a sensitive change of one's own account needs was wrong."""

    slug, title = "reauthentication-failed", "Re-authentication failed"


@dataclass(frozen=True)
class DeviceBinding:
    """The enrolled field device that signed a sign-in: the token is bound to it."""

    device_id: uuid.UUID
    office: str


def request_device() -> DeviceBinding | None:
    """The device that signed this request, when the sync feature is installed and the
    request is signed (a bad signature raises there); None for an unsigned request."""
    hook = current_app.extensions.get("casework.request_device")
    return None if hook is None else hook()


@dataclass(frozen=True)
class MfaProof:
    """What a change of one's own second factor is sent with besides the bearer token."""

    password: str
    totp: str | None = None
    enrolment_code: str | None = None


@dataclass(frozen=True)
class IssuedToken:
    """A new bearer token, shown once; only its digest is stored."""

    token: str
    expires_at: datetime
    mfa_enrolment_required: bool = False


def normalise_username(username: str) -> str:
    """The form usernames are stored and looked up in (NFKC, case-folded, trimmed)."""
    return unicodedata.normalize("NFKC", username).casefold().strip()


def actor_of(user: User) -> Actor:
    return Actor(user_id=str(user.id), role=user.role, office=user.office_code)


# --- login -----------------------------------------------------------------


def login(
    session: Session,
    username: str,
    password: str,
    code: str | None,
    client_address: str | None,
    device: DeviceBinding | None = None,
) -> IssuedToken:
    """Check the credentials and return a new token (bound to ``device`` when given).

    Raises TooManyRequests while the account or the address is locked, and
    Unauthorized (always the same) for any wrong credential, and for a user
    who does not belong to the signing device's office.

    Commits the request's transaction once before the password is checked
    (``db.commit_early``): the attempt is counted as a failure first, then the
    password is verified with no transaction open, then the outcome is recorded
    in the request's second transaction (a success takes the count back). If the
    request dies between the two, the attempt stays counted as a failure.
    """
    now = utcnow()
    policy = settings.throttle_policy()
    keys = _throttle_keys().for_login(username, _address(client_address))
    counters = _lock_counters(session, keys, now, policy)
    wait = max(_retry_after(policy, counter, now) for counter in counters)
    if wait:
        audit.record(AuditAction.AUTH_LOGIN_FAILED, outcome=Outcome.DENIED, session=session)
        db.persist_despite_error()
        raise TooManyRequests(wait, "Too many failed sign-ins; try again later.")
    attempt = _count_attempt(policy, counters, now)
    user = session.scalar(select(User).where(User.username == normalise_username(username)))
    db.commit_early(session)  # counted before any password is checked; no lock held below
    matched = _password_matches(user, password)
    if user is not None and matched is not None:  # the same statements for any wrong one
        user = _lock_user(session, user)
    failed_on = _check_credentials(session, user, matched, code, now)
    if failed_on is None and device is not None and user is not None:
        failed_on = None if user.office_code == device.office else "office"
    if failed_on is not None:
        _record_failure(session, attempt, user, failed_on)
        db.persist_despite_error()
        raise Unauthorized(LOGIN_REFUSED)
    assert user is not None
    _take_back(session, policy, attempt)
    return _signed_in(session, user, password, now, device)


def _password_matches(user: User | None, password: str) -> str | None:
    """The stored hash ``password`` matches, else None (an unknown user: None, after the
    time a wrong password takes). Called with no transaction open: argon2id is slow."""
    params = settings.password_params()
    if user is None:
        verify_dummy(password, params)  # the time a wrong password would take
        return None
    stored = user.password_hash
    return stored if verify_password(stored, password, params) else None


def _lock_user(session: Session, user: User) -> User | None:
    """Read ``user`` again (the same object, refreshed), locked for update; None when gone.
    The account may have changed while its password was checked outside the transaction."""
    return session.scalar(
        select(User)
        .where(User.id == user.id)
        .with_for_update(of=User)
        .execution_options(populate_existing=True)
    )


def _check_credentials(
    session: Session, user: User | None, matched: str | None, code: str | None, now: datetime
) -> str | None:
    """None when every credential is right, else the name of the first wrong one.

    ``matched`` is the stored hash the password was verified against (see
    :func:`_password_matches`); a password reset since makes the password wrong.
    """
    if user is None:
        return "username"
    if matched is None or matched != user.password_hash:
        return "password"
    if not user.may_sign_in:
        return "active"
    if user.is_mfa_enabled:
        if not code:
            return "totp"
        try:
            check_code(session, current_keyring(), user, code, now)
        except TotpError:
            return "totp"
    return None


def _signed_in(
    session: Session, user: User, password: str, now: datetime, device: DeviceBinding | None
) -> IssuedToken:
    params = settings.password_params()
    if needs_rehash(user.password_hash, params):
        user.password_hash = hash_password(password, params)
    user.last_login_at = now
    pending = mfa.needs_mfa(user) and not user.is_mfa_enabled
    device_id = device.device_id if device is not None else None
    issued = issue_token(session, user, now, mfa_pending=pending, device_id=device_id)
    _purge_expired_tokens(session, user, now)
    actor = replace(actor_of(user), device=None if device_id is None else str(device_id))
    audit.record(AuditAction.AUTH_LOGIN, target=str(user.id), actor=actor, session=session)
    return issued


def _record_failure(
    session: Session, attempt: CountedAttempt, user: User | None, failed_on: str
) -> None:
    """Record a refused sign-in (already counted) and, when its count locked a key, the lock."""
    target = str(user.id) if user is not None else None
    audit.record(
        AuditAction.AUTH_LOGIN_FAILED,
        target=target,
        fields=[failed_on],
        outcome=Outcome.FAILURE,
        session=session,
    )
    if attempt.locked:
        audit.record(
            AuditAction.AUTH_LOCKED, target=target, outcome=Outcome.DENIED, session=session
        )


# --- re-authentication for changes of one's own second factor ---------------


def reauthenticate(
    session: Session,
    user: User,
    password: str,
    code: str | None,
    client_address: str | None,
    action: AuditAction,
    reset_code: str | None = None,
) -> None:
    """Check the caller's password, and the current code when their MFA is on.

    A bearer token alone must not change the second factor (a stolen token would
    become a permanent takeover). Guesses count on the same per-account and
    per-address counters as sign-in, so a token gives no extra password guesses.
    With ``reset_code`` (enrolment after an administrator's reset) that code is
    checked too, as one more credential on the same counters.
    Raises TooManyRequests while locked, ValidationFailed when MFA is on and no
    code was sent, ReauthenticationFailed (403) for a wrong password or code.
    Like :func:`login`, commits the request's transaction once, the attempt
    counted, before the password is checked; what the caller changes afterwards
    is committed at the request's end as usual.
    """
    if user.is_mfa_enabled and not code:
        raise ValidationFailed(
            errors={"json": {"totp": ["The current one-time code is required while MFA is on."]}}
        )
    now = utcnow()
    policy = settings.throttle_policy()
    keys = _throttle_keys().for_login(user.username, _address(client_address))
    counters = _lock_counters(session, keys, now, policy)
    wait = max(_retry_after(policy, counter, now) for counter in counters)
    if wait:
        audit.record(action, target=str(user.id), outcome=Outcome.DENIED, session=session)
        db.persist_despite_error()
        raise TooManyRequests(wait, "Too many failed attempts; try again later.")
    attempt = _count_attempt(policy, counters, now)
    db.commit_early(session)  # counted before the password is checked, as at sign-in
    matched = _password_matches(user, password)
    if matched is not None:
        _lock_user(session, user)  # changed while the password was checked? (users stay)
    failed_on = _check_second_proof(session, user, matched, code, now)
    if failed_on is None and reset_code is not None:
        failed_on = None if mfa.reset_code_matches(user, reset_code) else "enrolment_code"
    if failed_on is None:
        _take_back(session, policy, attempt)
        return
    audit.record(
        action, target=str(user.id), fields=[failed_on], outcome=Outcome.FAILURE, session=session
    )
    if attempt.locked:
        audit.record(
            AuditAction.AUTH_LOCKED, target=str(user.id), outcome=Outcome.DENIED, session=session
        )
    db.persist_despite_error()
    raise ReauthenticationFailed(REAUTH_REFUSED)


def _check_second_proof(
    session: Session, user: User, matched: str | None, code: str | None, now: datetime
) -> str | None:
    """None when the password (and the code, when MFA is on) are right, else what failed.

    ``matched``: the stored hash the password was verified against (see :func:`login`).
    """
    if matched is None or matched != user.password_hash:
        return "password"
    if user.is_mfa_enabled:
        try:
            check_code(session, current_keyring(), user, code or "", now)
        except TotpError:
            return "totp"
    return None


def start_mfa_enrolment(
    session: Session,
    keyring: Keyring,
    principal: Principal,
    user: User,
    proof: MfaProof,
    client_address: str | None,
) -> tuple[str, str]:
    """Re-authenticate the caller, then give them a new pending seed (see mfa.begin_enrolment).

    After an administrator's reset the enrolment code the reset handed out is
    needed as well (422 without it): the password alone must not let someone
    else enrol first. If the caller's token is now good only for enrolment, it
    lives no longer than the enrolment window.
    """
    if user.mfa_enrolment_due and not proof.enrolment_code:
        raise ValidationFailed(
            errors={
                "json": {
                    "enrolment_code": [
                        "The enrolment code from the administrator's MFA reset is required."
                    ]
                }
            }
        )
    reset_code = proof.enrolment_code if user.mfa_enrolment_due else None
    reauthenticate(
        session,
        user,
        proof.password,
        proof.totp,
        client_address,
        AuditAction.AUTH_MFA_ENROL,
        reset_code=reset_code,
    )
    answer = mfa.begin_enrolment(session, keyring, user)
    _limit_to_enrolment_window(session, principal, user)
    return answer


def remove_own_mfa(
    session: Session,
    principal: Principal,
    user: User,
    password: str,
    code: str | None,
    client_address: str | None,
) -> None:
    """Re-authenticate the caller, then switch their MFA off (see mfa.remove_mfa)."""
    if user.mfa_secret is None:
        mfa.remove_mfa(session, user, None)  # raises Conflict: nothing to remove
    reauthenticate(session, user, password, code, client_address, AuditAction.AUTH_MFA_REMOVE)
    mfa.remove_mfa(session, user, current_token(session, principal))
    _limit_to_enrolment_window(session, principal, user)


def _limit_to_enrolment_window(session: Session, principal: Principal, user: User) -> None:
    """Shorten the caller's token to the enrolment window if it is now good only for that."""
    token = current_token(session, principal)
    if token is not None and mfa.needs_mfa(user) and not user.is_mfa_enabled:
        token.expires_at = min(token.expires_at, utcnow() + settings.enrolment_window())


# --- throttle counters -----------------------------------------------------


@dataclass(frozen=True)
class CountedAttempt:
    """An attempt counted as a failure before its password was checked.

    ``before`` holds each counter's (failures, last failure, expiry) as they were,
    ``counted`` the failures this attempt left, so that a success can take its
    count back exactly (see :func:`_take_back`); ``locked`` tells whether this
    count locked a key (``auth.locked`` is recorded if the attempt then fails).
    """

    keys: tuple[str, ...]
    at: datetime
    before: tuple[tuple[int, datetime | None, datetime], ...]
    counted: tuple[int, ...]
    locked: bool


def _count_attempt(
    policy: ThrottlePolicy, counters: Sequence[LoginThrottle], now: datetime
) -> CountedAttempt:
    """Count the attempt as a failure on every counter, provisionally (see :func:`login`)."""
    before = tuple((c.failures, c.last_failure_at, c.expires_at) for c in counters)
    locked = _count(policy, counters, now)
    counted = tuple(counter.failures for counter in counters)
    return CountedAttempt(tuple(c.key for c in counters), now, before, counted, locked)


def _take_back(session: Session, policy: ThrottlePolicy, attempt: CountedAttempt) -> None:
    """Undo the provisional count of an attempt that succeeded; then, as a success
    always did, the account's counter (the first key) starts again from zero while
    the address's keeps its earlier failures.

    A counter nobody counted on since gets its earlier values back; one counted
    on since loses this attempt's one failure (its last failure stays the later
    one's, so its lock and window end no earlier). A counter gone meanwhile (a
    password reset deletes the account's) is left gone.
    """
    rows = {row.key: row for row in _locked_rows(session, attempt.keys)}
    for key, before, counted in zip(attempt.keys, attempt.before, attempt.counted, strict=True):
        row = rows.get(key)
        if row is None:
            continue
        if row.failures == counted and row.last_failure_at == attempt.at:
            row.failures, row.last_failure_at, row.expires_at = before
        elif row.failures <= 1:
            row.failures, row.last_failure_at = 0, None
        else:
            row.failures -= 1
            if row.last_failure_at is not None:
                row.expires_at = policy.expires_at(row.failures, row.last_failure_at)
    account = rows.get(attempt.keys[0])
    if account is not None:
        account.failures, account.last_failure_at = 0, None


def _count(policy: ThrottlePolicy, counters: Sequence[LoginThrottle], now: datetime) -> bool:
    """Count one failure on every counter; return whether one of them is now locked."""
    locked = False
    for counter in counters:
        counter.failures = policy.failures_after(counter.failures, counter.last_failure_at, now)
        counter.last_failure_at = now
        counter.expires_at = policy.expires_at(counter.failures, now)
        locked = locked or policy.locked_until(counter.failures, now) is not None
    return locked


def _throttle_keys() -> ThrottleKeys:
    return ThrottleKeys(derived_secret("auth/throttle"))


def _address(client_address: str | None) -> str:
    """The address to count under; behind a proxy, configure ProxyFix so this is the client."""
    return client_address or _UNKNOWN_ADDRESS


def _retry_after(policy: ThrottlePolicy, counter: LoginThrottle, now: datetime) -> int:
    if counter.last_failure_at is None:
        return 0
    return policy.retry_after_seconds(counter.failures, counter.last_failure_at, now)


def _lock_counters(
    session: Session, keys: tuple[str, str], now: datetime, policy: ThrottlePolicy
) -> list[LoginThrottle]:
    """Return the (account, address) counters, created if absent and locked for update.

    The row locks serialise the counting of attempts on one account
    (PostgreSQL; SQLite serialises every write anyway); each attempt is counted
    before its password is checked, so parallel guesses cannot overtake the
    lock-out. The locks end with that short transaction, before the check.
    """
    _purge_expired_counters(session, now)
    # Sorted, so that two attempts on the same keys never wait for each other crosswise.
    fresh = [{"key": k, "failures": 0, "expires_at": now + policy.window} for k in sorted(keys)]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(LoginThrottle).values(fresh).on_conflict_do_nothing())
    by_key = {row.key: row for row in _locked_rows(session, keys)}
    return [by_key[key] for key in keys]


def _locked_rows(session: Session, keys: Sequence[str]) -> Sequence[LoginThrottle]:
    """The counters of ``keys`` that exist, freshly read and locked for update, by key."""
    return session.scalars(
        select(LoginThrottle)
        .where(LoginThrottle.key.in_(keys))
        .order_by(LoginThrottle.key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()


def _purge_expired_counters(session: Session, now: datetime) -> None:
    """Forget counters past their window, a few at a time, skipping rows others hold."""
    stale = (
        select(LoginThrottle.key)
        .where(LoginThrottle.expires_at < now)
        .limit(_PURGE_BATCH)
        .with_for_update(skip_locked=True)
    )
    session.execute(
        delete(LoginThrottle)
        .where(LoginThrottle.key.in_(stale))
        .execution_options(synchronize_session=False)
    )


# --- tokens ----------------------------------------------------------------


def issue_token(
    session: Session,
    user: User,
    now: datetime,
    *,
    mfa_pending: bool,
    device_id: uuid.UUID | None = None,
) -> IssuedToken:
    """Store the digest of a new token for ``user`` and return the token itself."""
    raw = new_token()
    # Enrolment-only access rests on the password alone: it gets minutes, not hours.
    lifetime = settings.token_lifetime()
    if mfa_pending:
        lifetime = min(lifetime, settings.enrolment_window())
    expires_at = now + lifetime
    session.add(
        AccessToken(
            token_hash=hash_token(raw),
            user_id=user.id,
            mfa_pending=mfa_pending,
            created_at=now,
            last_used_at=now,
            expires_at=expires_at,
            device_id=device_id,
        )
    )
    return IssuedToken(raw, expires_at, mfa_pending)


def _purge_expired_tokens(session: Session, user: User, now: datetime) -> None:
    session.execute(
        delete(AccessToken)
        .where(AccessToken.user_id == user.id, AccessToken.expires_at < now)
        .execution_options(synchronize_session=False)
    )


def revoke_user_tokens(session: Session, user_id: uuid.UUID) -> None:
    """End every session of a user at once (disabled, role or office changed, reset)."""
    session.execute(
        update(AccessToken)
        .where(AccessToken.user_id == user_id, AccessToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def revoke_office_tokens(session: Session, office_code: str) -> None:
    """End every session of the staff of an office (the office was deactivated)."""
    staff = select(User.id).where(User.office_code == office_code)
    session.execute(
        update(AccessToken)
        .where(AccessToken.user_id.in_(staff), AccessToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def logout(session: Session, principal: Principal) -> None:
    """Revoke the caller's token now; the next request with it answers 401."""
    token = current_token(session, principal)
    if token is not None and token.revoked_at is None:
        token.revoked_at = utcnow()
    audit.record(AuditAction.AUTH_LOGOUT, target=principal.user_id, session=session)


def current_token(session: Session, principal: Principal) -> AccessToken | None:
    """The token the caller authenticated with (None for other authenticators)."""
    if principal.session_id is None:
        return None
    return session.get(AccessToken, uuid.UUID(principal.session_id))


def is_live(token: AccessToken, now: datetime) -> bool:
    """Not revoked, within its absolute and idle lifetimes, and its user may sign in."""
    return _live(token.revoked_at, token.expires_at, token.last_used_at, now) and (
        token.user.may_sign_in
    )


def _live(
    revoked_at: datetime | None, expires_at: datetime, last_used_at: datetime, now: datetime
) -> bool:
    return revoked_at is None and now < expires_at and now < last_used_at + settings.token_idle()


#: What authenticating a bearer token needs, in one statement built once: the token, its
#: user and the user's office, as plain columns (no ORM objects to build per request).
_TOKEN_LOOKUP = (
    select(
        AccessToken.id,
        AccessToken.user_id,
        AccessToken.mfa_pending,
        AccessToken.last_used_at,
        AccessToken.expires_at,
        AccessToken.revoked_at,
        AccessToken.device_id,
        User.role,
        User.office_code,
        User.is_active,
        User.mfa_enabled_at,
        User.mfa_enrolment_due,
        Office.is_active.label("office_active"),
        Office.mfa_exempt,
    )
    .join(User, User.id == AccessToken.user_id)
    .outerjoin(Office, Office.code == User.office_code)
    .where(AccessToken.token_hash == bindparam("token_hash"))
)


def bearer_principal() -> Principal | None:
    """Authenticator: the principal of ``Authorization: Bearer <token>``.

    No header: None (anonymous; other authenticators may still answer). A
    header that is malformed or names an unknown, expired or revoked token, or
    a disabled user's: records ``auth.token_rejected`` and raises Unauthorized.
    The shape check comes first, so junk never reaches the database lookup.
    """
    header = request.headers.get("Authorization")
    if header is None:
        return None
    return token_principal(header, None)


def token_principal(header: str, device_id: uuid.UUID | None) -> Principal:
    """The principal of an ``Authorization`` header on a request signed by ``device_id``
    (None: unsigned). A token bound to a device is good only on requests that device
    signed, and a signed request needs a token bound to its device: a token stolen
    from a laptop is not a bearer token. Raises Unauthorized as bearer_principal does.
    """
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not looks_like_token(value):
        _reject(None)
    session = db.session()
    # Plain columns: run on the session's connection, without the ORM's per-statement work.
    lookup = session.connection().execute(_TOKEN_LOOKUP, {"token_hash": hash_token(value)})
    row = lookup.one_or_none()
    now = utcnow()
    if row is None:
        _reject(None)
    may_sign_in = row.is_active and (row.office_code is None or bool(row.office_active))
    live = may_sign_in and _live(row.revoked_at, row.expires_at, row.last_used_at, now)
    if not live or row.device_id != device_id:
        _reject(row.user_id)
    if now - row.last_used_at >= TOUCH_INTERVAL:
        session.execute(
            update(AccessToken)
            .where(AccessToken.id == row.id)
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
    exempt = row.office_code is not None and bool(row.mfa_exempt)
    pending = mfa.pending_for(
        row.mfa_pending, row.role, exempt, row.mfa_enrolment_due, row.mfa_enabled_at is not None
    )
    return Principal.for_role(
        row.role,
        user_id=str(row.user_id),
        office=row.office_code,
        session_id=str(row.id),
        mfa_pending=pending,
        device_id=None if device_id is None else str(device_id),
    )


def _reject(user_id: uuid.UUID | None) -> NoReturn:
    session = db.session()
    target = str(user_id) if user_id is not None else None
    audit.record(
        AuditAction.AUTH_TOKEN_REJECTED, target=target, outcome=Outcome.DENIED, session=session
    )
    db.persist_despite_error()
    raise Unauthorized(TOKEN_REFUSED)
