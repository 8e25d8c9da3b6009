"""Routes: sign-in, tokens, MFA (``/api/v1/auth``) and staff accounts (``/api/v1/users``).

Thin: parse, load, check, call one service function, dump. Access is
declared on every view; the service records the access-log entries.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import request
from flask.views import MethodView
from marshmallow import RAISE

from casework import db
from casework.api import ETAG_HEADER, IF_MATCH, Blueprint, problems
from casework.auth import mfa, service, sessions
from casework.auth.models import User
from casework.auth.schemas import (
    LoginSchema,
    MeSchema,
    MfaConfirmSchema,
    MfaEnrolmentSchema,
    MfaReauthSchema,
    MfaResetSchema,
    PasswordResetSchema,
    TokenSchema,
    UserCreateSchema,
    UserPageSchema,
    UserSchema,
    UserUpdateSchema,
)
from casework.auth.totp import TotpError
from casework.authz.access import Principal, public, require_principal, requires
from casework.authz.permissions import Permission
from casework.concurrency import etag_for, require_if_match
from casework.errors import PROBLEM_MIME, Unauthorized, ValidationFailed
from casework.pagination import PageArgs
from casework.security.app import current_keyring

blp = Blueprint(
    "auth", __name__, url_prefix="/api/v1/auth", description="Sign-in, bearer tokens and MFA."
)
users_blp = Blueprint(
    "users", __name__, url_prefix="/api/v1/users", description="Staff accounts (administrators)."
)


def _caller() -> tuple[Principal, User]:
    """The signed-in principal and their account (401 when they have none)."""
    principal = require_principal()
    try:
        user_id = uuid.UUID(principal.user_id or "")
    except ValueError:
        raise Unauthorized("This endpoint is for staff accounts.") from None
    user = db.session().get(User, user_id)
    if user is None:
        raise Unauthorized("This endpoint is for staff accounts.")
    return principal, user


def _me(principal: Principal, user: User, *, mfa_pending: bool) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "office": user.office_code,
        "permissions": sorted(p.value for p in principal.permissions),
        "mfa_enabled": user.is_mfa_enabled,
        "mfa_pending": mfa_pending,
    }


@blp.route("/login")
class Login(MethodView):
    @public
    @blp.arguments(LoginSchema)
    @blp.response(200, TokenSchema)
    @problems(blp, 422, 429)
    @blp.alt_response(
        401,
        schema="Problem",
        content_type=PROBLEM_MIME,
        description="Wrong credentials (one answer).",
    )
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Sign in with username, password and (once MFA is enabled) a one-time code.

        Sent as a signed field-device request (RFC 9421, see docs/sync.md), the token
        is bound to that device: it is then accepted only on requests the device
        signs, and the user must belong to the device's office."""
        issued = sessions.login(
            db.session(),
            body["username"],
            body["password"],
            body.get("totp"),
            request.remote_addr,
            device=sessions.request_device(),
        )
        answer: dict[str, Any] = {"token": issued.token, "expires_at": issued.expires_at}
        if issued.mfa_enrolment_required:
            answer["mfa_enrolment_required"] = True
        return answer


@blp.route("/logout")
class Logout(MethodView):
    @requires(Permission.SELF, allow_mfa_pending=True)
    @blp.response(204)
    @problems(blp, 401, 403)
    def post(self) -> None:
        """Revoke the token of this request at once."""
        sessions.logout(db.session(), require_principal())


@blp.route("/me")
class Me(MethodView):
    @requires(Permission.SELF)
    @blp.response(200, MeSchema)
    @problems(blp, 401, 403)
    def get(self) -> dict[str, Any]:
        """The caller's account and permissions."""
        principal, user = _caller()
        return _me(principal, user, mfa_pending=principal.mfa_pending)


@blp.route("/mfa/enrol")
class MfaEnrol(MethodView):
    @requires(Permission.SELF, allow_mfa_pending=True)
    @blp.arguments(MfaReauthSchema)
    @blp.response(200, MfaEnrolmentSchema)
    @problems(blp, 401, 403, 422, 429)
    def post(self, body: dict[str, Any]) -> dict[str, str]:
        """Start TOTP enrolment or re-enrolment: a new seed for the authenticator app (shown
        once). Needs the password, the current code while MFA is on, and after an
        administrator's MFA reset the enrolment code it handed out (403
        `reauthentication-failed` when wrong; failures count towards the sign-in lock).
        Re-enrolling switches MFA off until the new seed is confirmed; a token good only
        for enrolment expires within `mfa_enrolment_minutes`."""
        principal, user = _caller()
        proof = sessions.MfaProof(body["password"], body.get("totp"), body.get("enrolment_code"))
        secret, uri = sessions.start_mfa_enrolment(
            db.session(), current_keyring(), principal, user, proof, request.remote_addr
        )
        return {"secret": secret, "otpauth_uri": uri}


@blp.route("/mfa")
class MfaOwn(MethodView):
    @requires(Permission.SELF)
    @blp.arguments(MfaReauthSchema)
    @blp.response(200, MeSchema)
    @problems(blp, 401, 403, 409, 422, 429)
    def delete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Remove one's own MFA; needs the password and the current code. Every other token
        of the user is revoked; where MFA is required, this token is then good only for
        enrolment (409 when MFA is not set up)."""
        principal, user = _caller()
        session = db.session()
        sessions.remove_own_mfa(
            session, principal, user, body["password"], body.get("totp"), request.remote_addr
        )
        return _me(principal, user, mfa_pending=mfa.needs_mfa(user))


@blp.route("/mfa/confirm")
class MfaConfirm(MethodView):
    @requires(Permission.SELF, allow_mfa_pending=True)
    @blp.arguments(MfaConfirmSchema)
    @blp.response(200, MeSchema)
    @problems(blp, 401, 403, 409, 422)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Confirm enrolment with a code from the app; the token then has its full permissions
        and every other token of the user is revoked."""
        principal, user = _caller()
        session = db.session()
        token = sessions.current_token(session, principal)
        try:
            mfa.confirm_enrolment(session, current_keyring(), user, token, body["totp"])
        except TotpError:
            mfa.record_failed_confirmation(session, user)
            db.persist_despite_error()
            raise ValidationFailed(
                errors={"json": {"totp": ["The code was not accepted."]}}
            ) from None
        return _me(principal, user, mfa_pending=False)


@users_blp.route("")
class Users(MethodView):
    @requires(Permission.USERS_READ)
    @users_blp.arguments(PageArgs, location="query", unknown=RAISE)
    @users_blp.response(200, UserPageSchema)
    @problems(users_blp, 401, 403, 422)
    def get(self, page: dict[str, Any]) -> dict[str, Any]:
        """Staff accounts, by username."""
        items, next_cursor = service.list_users(db.session(), page["limit"], page["cursor"])
        return {"items": items, "next_cursor": next_cursor}

    @requires(Permission.USERS_WRITE)
    @users_blp.arguments(UserCreateSchema)
    @users_blp.response(201, UserSchema)
    @problems(users_blp, 401, 403, 409, 422)
    def post(self, body: dict[str, Any]) -> tuple[User, int, dict[str, str]]:
        """Create an account. An office is required for every role but admin and auditor."""
        user = service.create_user(
            db.session(),
            username=body["username"],
            password=body["password"],
            role=body["role"],
            office_code=body["office"],
        )
        return user, 201, {"ETag": etag_for(user.version)}


@users_blp.route("/<uuid:user_id>")
class UserById(MethodView):
    @requires(Permission.USERS_READ)
    @users_blp.response(200, UserSchema)
    @problems(users_blp, 401, 403, 404)
    def get(self, user_id: uuid.UUID) -> tuple[User, int, dict[str, str]]:
        """One account, with its ETag."""
        user = service.read_user(db.session(), user_id)
        return user, 200, {"ETag": etag_for(user.version)}

    @requires(Permission.USERS_WRITE)
    @users_blp.arguments(UserUpdateSchema)
    @users_blp.response(200, UserSchema)
    @users_blp.doc(parameters=[IF_MATCH])
    @problems(users_blp, 401, 403, 404, 409, 412, 422, 428)
    def patch(
        self, changes: dict[str, Any], user_id: uuid.UUID
    ) -> tuple[User, int, dict[str, str]]:
        """Change role, office or active. Any of these but enabling ends the user's sessions."""
        session = db.session()
        user = service.get_user(session, user_id, for_update=True)
        require_if_match(user.version)
        service.update_user(session, user, changes)
        return user, 200, {"ETag": etag_for(user.version)}


@users_blp.route("/<uuid:user_id>/reset-password")
class UserPasswordReset(MethodView):
    @requires(Permission.USERS_WRITE)
    @users_blp.arguments(PasswordResetSchema)
    @users_blp.response(204, headers=ETAG_HEADER)
    @users_blp.doc(parameters=[IF_MATCH])
    @problems(users_blp, 401, 403, 404, 412, 422, 428)
    def post(self, body: dict[str, Any], user_id: uuid.UUID) -> tuple[str, int, dict[str, str]]:
        """Set a new password (If-Match: the user's ETag); the user's sessions end and a
        lock-out is lifted."""
        session = db.session()
        user = service.get_user(session, user_id, for_update=True)
        require_if_match(user.version)
        service.reset_password(session, user, body["password"])
        return "", 204, {"ETag": etag_for(user.version)}


@users_blp.route("/<uuid:user_id>/reset-mfa")
class UserMfaReset(MethodView):
    @requires(Permission.USERS_WRITE)
    @users_blp.response(200, MfaResetSchema, headers=ETAG_HEADER)
    @users_blp.doc(parameters=[IF_MATCH])
    @problems(users_blp, 401, 403, 404, 412, 428)
    def post(self, user_id: uuid.UUID) -> tuple[dict[str, str], int, dict[str, str]]:
        """Remove the user's TOTP seed (lost phone); their sessions end and their next
        sign-in must enrol again, even in an office exempt from MFA. Answers the one-time
        enrolment code (shown once): give it to the user in person or by a channel you
        trust, after checking who they are; their enrolment needs it with the password.
        Any later change of the account voids it (reset again for a new one)."""
        session = db.session()
        user = service.get_user(session, user_id, for_update=True)
        require_if_match(user.version)
        code = service.reset_mfa(session, user)
        return {"enrolment_code": code}, 200, {"ETag": etag_for(user.version)}
