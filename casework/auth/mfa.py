"""Second factor: TOTP seeds sealed under the keyring, enrolment, and code checks.

Who must use it is decided per user (:func:`needs_mfa`): their role requires
it unless their office is exempt, or an administrator's reset made enrolment
due. Enrolling and removing need the password (and the current code when MFA
is on) in the same request, checked by the caller (``sessions.reauthenticate``):
a stolen bearer token alone cannot replace the owner's authenticator.

A seed is sealed with AES-256-GCM under the keyring's active KEK; the KEK id is
stored beside it and bound, with the user id and the purpose, as associated
data, so a sealed seed copied to another user's row does not open. Key rotation
re-seals the few seeds with :func:`reencrypt_mfa_seeds`.

Sealed seed, format 1: ``0x01 || nonce (12) || AES-GCM(base32 seed) || tag (16)``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import uuid
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from casework import audit
from casework.audit import AuditAction, Outcome
from casework.auth import settings
from casework.auth.models import AccessToken, User
from casework.auth.totp import (
    TotpError,
    TotpFailure,
    new_totp_secret,
    provisioning_uri,
    verify_totp,
)
from casework.errors import Conflict
from casework.security.app import derived_secret
from casework.security.errors import DecryptionError
from casework.security.framing import length_prefixed
from casework.security.keyring import Keyring
from casework.timestamps import utcnow

SEED_FORMAT = 0x01
_NONCE_BYTES = 12
_DOMAIN = b"casework.mfa-seed.v1"
_PURPOSE = b"totp"
ISSUER = "casework"
_RESET_DOMAIN = b"casework.mfa-reset-code.v1"
_RESET_CODE_BYTES = 10  # 80 bits, 16 base32 characters


def _aad(kek_id: str, user_id: uuid.UUID) -> bytes:
    return bytes((SEED_FORMAT,)) + length_prefixed(
        _DOMAIN, kek_id.encode("ascii"), user_id.bytes, _PURPOSE
    )


def seal_seed(keyring: Keyring, user_id: uuid.UUID, secret: str) -> tuple[str, bytes]:
    """Return ``(kek_id, blob)``: ``secret`` sealed under the active KEK for ``user_id``."""
    kek = keyring.active_kek()
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(kek.key_bytes()).encrypt(
        nonce, secret.encode("ascii"), _aad(kek.kek_id, user_id)
    )
    return kek.kek_id, bytes((SEED_FORMAT,)) + nonce + sealed


def open_seed(keyring: Keyring, user_id: uuid.UUID, kek_id: str, blob: bytes) -> str:
    """Return the seed sealed in ``blob``.

    Raises DecryptionError when the blob is malformed, altered or belongs to
    another user; UnknownKeyError when its KEK is unknown or destroyed.
    """
    blob = bytes(blob)
    if len(blob) < 1 + _NONCE_BYTES + 16 or blob[0] != SEED_FORMAT:
        raise DecryptionError("sealed MFA seed is malformed")
    kek = keyring.kek(kek_id)
    nonce, sealed = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
    try:
        return AESGCM(kek.key_bytes()).decrypt(nonce, sealed, _aad(kek_id, user_id)).decode()
    except InvalidTag:
        raise DecryptionError("sealed MFA seed failed authentication") from None


def user_seed(keyring: Keyring, user: User) -> str:
    """The user's TOTP seed (pending or confirmed); the user must have one."""
    assert user.mfa_secret is not None
    assert user.mfa_kek_id is not None
    return open_seed(keyring, user.id, user.mfa_kek_id, user.mfa_secret)


def mfa_seeds_behind(session: Session, keyring: Keyring) -> int:
    """How many seeds are not sealed under the active KEK (0 before retiring a KEK)."""
    active = keyring.active_kek().kek_id
    query = (
        select(func.count())
        .select_from(User)
        .where(User.mfa_secret.is_not(None), User.mfa_kek_id != active)
    )
    return session.scalar(query) or 0


def reencrypt_mfa_seeds(session: Session, keyring: Keyring) -> int:
    """Re-seal every seed that is not under the active KEK; return how many. Does not commit.

    For the key-rotation command: run it after ``keyring.rotate()`` and before
    retiring the old KEK (seeds are few: one per staff member).
    """
    active = keyring.active_kek().kek_id
    query = (
        select(User)
        .where(User.mfa_secret.is_not(None), User.mfa_kek_id != active)
        .order_by(User.id)
        .with_for_update(of=User)
    )
    count = 0
    for user in session.scalars(query):
        user.mfa_kek_id, user.mfa_secret = seal_seed(keyring, user.id, user_seed(keyring, user))
        count += 1
    return count


def check_code(session: Session, keyring: Keyring, user: User, code: str, now: datetime) -> int:
    """Accept ``code`` for ``user`` once and return its time step; raise TotpError otherwise.

    The step is claimed by a conditional UPDATE, so two requests racing with
    the same code cannot both succeed: the loser updates no row and is refused.
    """
    step = verify_totp(user_seed(keyring, user), code, now, user.mfa_last_step)
    claimed = session.execute(
        update(User)
        .where(User.id == user.id)
        .where(or_(User.mfa_last_step.is_(None), User.mfa_last_step < step))
        .values(mfa_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise TotpError(TotpFailure.REPLAYED)
    set_committed_value(user, "mfa_last_step", step)  # already written; no second UPDATE
    return step


def needs_mfa(user: User) -> bool:
    """Whether ``user`` must hold a second factor before using a full token."""
    exempt = user.office is not None and user.office.mfa_exempt
    return settings.mfa_required_for(user.role, exempt, user.mfa_enrolment_due)


def mfa_pending(user: User, token: AccessToken) -> bool:
    """Whether ``token`` is good only for enrolment: issued so, or its user must have MFA
    now (an exemption lifted, a role added to the configuration) and has none."""
    exempt = user.office is not None and user.office.mfa_exempt
    return pending_for(
        token.mfa_pending, user.role, exempt, user.mfa_enrolment_due, user.is_mfa_enabled
    )


def pending_for(
    token_pending: bool, role: str, office_exempt: bool, enrolment_due: bool, mfa_enabled: bool
) -> bool:
    """:func:`mfa_pending` from the columns it reads (the token lookup selects only those)."""
    return token_pending or (
        settings.mfa_required_for(role, office_exempt, enrolment_due) and not mfa_enabled
    )


def reset_code(user: User) -> str:
    """The one-time enrolment code an administrator's MFA reset hands out, as ``XXXX-...``.

    After a reset the password alone would let whoever knows it enrol their own
    authenticator before the owner does; the owner gets this code out of band
    (from the administrator who checked who they are) and enrolment needs it.
    Nothing is stored: it is an HMAC of the user id and the account's version,
    so it dies with the next administrative change (another reset re-issues it),
    and it is only asked for while enrolment is due (until confirmed).
    """
    message = _RESET_DOMAIN + user.id.bytes + user.version.to_bytes(8, "big")
    digest = hmac.new(derived_secret("auth/mfa-reset"), message, hashlib.sha256).digest()
    text = base64.b32encode(digest[:_RESET_CODE_BYTES]).decode("ascii")
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def reset_code_matches(user: User, code: str) -> bool:
    """Whether ``code`` is the user's current reset code (dashes, spaces and case ignored)."""
    given = code.replace("-", "").replace(" ", "").upper().encode("ascii", "replace")
    return hmac.compare_digest(given, reset_code(user).replace("-", "").encode("ascii"))


def begin_enrolment(session: Session, keyring: Keyring, user: User) -> tuple[str, str]:
    """Give ``user`` a new (pending) seed; return ``(secret, otpauth_uri)``.

    The caller has checked the password (and the current code when MFA is on).
    Calling it again before confirming replaces the seed (a mistyped scan).
    Re-enrolling while MFA is on switches it off until the new seed is
    confirmed: meanwhile a user who needs MFA holds enrolment-only tokens.
    """
    secret = new_totp_secret()
    user.mfa_kek_id, user.mfa_secret = seal_seed(keyring, user.id, secret)
    user.mfa_enabled_at = None
    user.mfa_last_step = None
    audit.record(AuditAction.AUTH_MFA_ENROL, target=str(user.id), session=session)
    return secret, provisioning_uri(secret, user.username, ISSUER)


def confirm_enrolment(
    session: Session, keyring: Keyring, user: User, token: AccessToken | None, code: str
) -> None:
    """Enable MFA when ``code`` matches the pending seed; end every other session of the user.

    Raises Conflict when there is no pending enrolment, TotpError for a refused code.
    The token that confirmed has just proved both factors, so it becomes a full
    token; every other token of the user is revoked, because it was issued
    without this authenticator (perhaps to whoever stole a password or token).
    """
    if user.is_mfa_enabled or user.mfa_secret is None:
        raise Conflict("There is no pending MFA enrolment; enrol first.")
    now = utcnow()
    check_code(session, keyring, user, code, now)
    user.mfa_enabled_at = now
    user.mfa_enrolment_due = False
    if token is not None:  # a full token now, as long-lived as a full sign-in would have been
        token.mfa_pending = False
        token.expires_at = max(token.expires_at, token.created_at + settings.token_lifetime())
    revoke_other_tokens(session, user.id, token.id if token is not None else None)
    audit.record(AuditAction.AUTH_MFA_CONFIRM, target=str(user.id), session=session)


def remove_mfa(session: Session, user: User, token: AccessToken | None) -> None:
    """Switch the caller's own MFA off (after the caller re-authenticated); end their other
    sessions. Raises Conflict when they have no seed at all.

    A user who needs MFA keeps only an enrolment-only session (see :func:`mfa_pending`).
    """
    if user.mfa_secret is None:
        raise Conflict("MFA is not enabled.")
    clear_mfa(user)
    revoke_other_tokens(session, user.id, token.id if token is not None else None)
    audit.record(AuditAction.AUTH_MFA_REMOVE, target=str(user.id), fields=["mfa"], session=session)


def revoke_other_tokens(session: Session, user_id: uuid.UUID, keep: uuid.UUID | None) -> None:
    """Revoke every live token of ``user_id`` but ``keep`` (the caller's own)."""
    query = update(AccessToken).where(
        AccessToken.user_id == user_id, AccessToken.revoked_at.is_(None)
    )
    if keep is not None:
        query = query.where(AccessToken.id != keep)
    session.execute(query.values(revoked_at=utcnow()).execution_options(synchronize_session=False))


def record_failed_confirmation(session: Session, user: User) -> None:
    """Access-log entry for a refused confirmation code (kept despite the 422)."""
    audit.record(
        AuditAction.AUTH_MFA_CONFIRM, target=str(user.id), outcome=Outcome.FAILURE, session=session
    )


def clear_mfa(user: User) -> None:
    """Forget the user's seed and its state (an administrator's reset)."""
    user.mfa_secret = None
    user.mfa_kek_id = None
    user.mfa_enabled_at = None
    user.mfa_last_step = None
