"""Devices: enrolment codes, enrolment, revocation, and the signed-request check.

Services never commit. Every enrolment and revocation, and every refused
signature, is recorded in the access log; a refusal survives the request's
rollback (``db.persist_despite_error``) so a replay attempt is never silent.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from flask import g, request
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from casework import audit, db
from casework.audit import AuditAction, Outcome
from casework.auth.tokens import TokenFormatError, hash_enrolment_code, new_enrolment_code
from casework.authz.access import Principal
from casework.errors import CaseworkError, NotFound, ValidationFailed
from casework.offices.models import Office
from casework.sync import signatures as sig
from casework.sync.models import Device, EnrolmentCode, SeenNonce
from casework.timestamps import utcnow

ENROLMENT_LIFETIME = timedelta(minutes=15)
#: A signature's ``created`` may differ from the server's clock by at most this much.
SIGNATURE_WINDOW = timedelta(seconds=300)
SIGNATURE_LABEL = "sig1"
SIGNATURE_ALG = "ed25519"
_NONCE_MAX = 128
_PURGE_BATCH = 100
CODE_REFUSED = "The enrolment code is not valid, has expired or was used."


class BadSignature(CaseworkError):
    """401: a device request whose signature, digest, time or nonce is not acceptable."""

    status, slug, title = 401, "bad-signature", "The request signature is not valid"

    def headers(self) -> dict[str, str]:
        found = self.extra.get("server_time")
        if found is None:
            return {}
        return {"Date": format_datetime(datetime.fromisoformat(found), usegmt=True)}


class DeviceRevoked(CaseworkError):
    """401: the device was revoked; the client must wipe its replica and keys."""

    status, slug, title = 401, "device-revoked", "This device was revoked"


# --- enrolment -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedCode:
    code: str
    expires_at: datetime


def issue_enrolment_code(
    session: Session, principal: Principal, office_code: str, label: str
) -> IssuedCode:
    """A one-time code (15 minutes) that enrols one device into ``office_code``."""
    office = session.get(Office, office_code)
    if office is None or not office.is_active:
        raise ValidationFailed(errors={"json": {"office": ["No such active office."]}})
    code = new_enrolment_code()
    now = utcnow()
    session.add(
        EnrolmentCode(
            code_hash=hash_enrolment_code(code),
            office_code=office_code,
            label=label,
            created_by=_user_id(principal),
            created_at=now,
            expires_at=now + ENROLMENT_LIFETIME,
        )
    )
    audit.record(AuditAction.DEVICE_ENROL, fields=["enrolment_code"], session=session)
    return IssuedCode(code, now + ENROLMENT_LIFETIME)


def enrol(session: Session, code: str, public_key: str, proof: str) -> Device:
    """Register a device key with a one-time code; ``proof`` signs the code with that key.

    Raises ValidationFailed (one message for every wrong code, so codes cannot be
    probed) or for a malformed key or proof.
    """
    try:
        key = sig.b64url_decode(public_key)
        signature = sig.b64url_decode(proof)
        digest = hash_enrolment_code(code)
    except (ValueError, TokenFormatError):
        raise _enrol_refused(session) from None
    row = session.scalar(
        select(EnrolmentCode).where(EnrolmentCode.code_hash == digest).with_for_update()
    )
    now = utcnow()
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise _enrol_refused(session)
    if len(key) != 32 or not sig.verify_ed25519(key, signature, code.encode("utf-8")):
        raise _enrol_refused(session, "proof")
    row.used_at = now
    device = Device(
        id=uuid.uuid4(),
        office_code=row.office_code,
        label=row.label,
        public_key=key,
        enrolled_at=now,
        enrolled_by=row.created_by,
        next_seq=1,
    )
    session.add(device)
    session.flush()
    actor = audit.Actor(
        user_id=None, role="device", office=device.office_code, device=str(device.id)
    )
    audit.record(AuditAction.DEVICE_ENROL, target=str(device.id), actor=actor, session=session)
    return device


def _enrol_refused(session: Session, field: str = "code") -> ValidationFailed:
    session.rollback()
    audit.record(AuditAction.DEVICE_ENROL, fields=[field], outcome=Outcome.DENIED, session=session)
    db.persist_despite_error()
    return ValidationFailed(errors={"json": {field: [CODE_REFUSED]}})


def list_devices(session: Session) -> Sequence[Device]:
    return session.scalars(select(Device).order_by(Device.enrolled_at, Device.id)).all()


def revoke(session: Session, device_id: uuid.UUID) -> Device:
    """Revoke a device now: its next request answers ``device-revoked``. Idempotent."""
    device = session.get(Device, device_id, with_for_update=True)
    if device is None:
        raise NotFound("No such device.")
    if device.revoked_at is None:
        device.revoked_at = utcnow()
    audit.record(AuditAction.DEVICE_REVOKE, target=str(device.id), session=session)
    return device


def _user_id(principal: Principal) -> uuid.UUID | None:
    try:
        return uuid.UUID(principal.user_id or "")
    except ValueError:
        return None


# --- signed requests -----------------------------------------------------------------------


def is_signed_request() -> bool:
    return "Signature-Input" in request.headers or "Signature" in request.headers


def signed_message() -> sig.SignedMessage:
    """The request as RFC 9421 sees it; ``@target-uri`` from the raw request line."""
    environ = request.environ
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not raw:
        query = request.query_string.decode("latin-1")
        raw = request.path + (f"?{query}" if query else "")
    path, _, query = raw.partition("?")
    headers = {name.lower(): value for name, value in request.headers.items()}
    return sig.SignedMessage(
        method=request.method,
        target_uri=f"{request.scheme}://{request.host}{raw}",
        authority=request.host,
        path=path,
        query=f"?{query}",
        headers=headers,
    )


def verified_device(session: Session) -> Device:
    """The device that signed this request, verified once per request.

    Raises :class:`BadSignature` for a missing, malformed or wrong signature, a
    body whose digest does not match, a ``created`` outside the window (with
    ``server_time``) or a nonce already seen, and :class:`DeviceRevoked`. Each
    refusal is recorded in the access log.
    """
    cached = g.get("_sync_device")
    if cached is not None:
        return cached
    device = _verify(session)
    g._sync_device = device
    return device


def _verify(session: Session) -> Device:
    now = utcnow()
    try:
        parsed = sig.parse_signature_input(
            request.headers.get("Signature-Input", ""), SIGNATURE_LABEL
        )
        signature = sig.parse_signature(request.headers.get("Signature", ""), SIGNATURE_LABEL)
    except sig.SignatureFormatError:
        raise _refuse(session, None, "The request must be signed (RFC 9421, label sig1).") from None
    params = parsed.params
    device = _device_of(session, params.get("keyid"))
    if device is None:
        raise _refuse(session, None, "Unknown device key.")
    if device.is_revoked:
        _record(session, device, "device")
        raise DeviceRevoked("This device was revoked: wipe the replica and enrol again.")
    _check_policy(session, device, parsed)
    body = request.get_data(cache=True)
    if body and not sig.digest_matches(request.headers.get("Content-Digest", ""), body):
        raise _refuse(session, device, "Content-Digest does not match the body.")
    try:
        base = sig.signature_base(signed_message(), parsed)
    except sig.SignatureFormatError:
        raise _refuse(session, device, "A covered component is missing.") from None
    if not sig.verify_ed25519(device.public_key, signature, base):
        raise _refuse(session, device, "The signature does not verify.")
    created = datetime.fromtimestamp(int(params["created"]), UTC)
    if abs(now - created) > SIGNATURE_WINDOW:
        raise _refuse(
            session,
            device,
            "The signature's created time is outside 300 s of the server's clock.",
            server_time=now.isoformat(),
        )
    if not _first_use(session, device, str(params["nonce"]), created):
        raise _refuse(session, device, "This nonce was already used (a replay).")
    return device


def _device_of(session: Session, keyid: object) -> Device | None:
    try:
        device_id = uuid.UUID(str(keyid))
    except ValueError:
        return None
    return session.get(Device, device_id)


def _check_policy(session: Session, device: Device, parsed: sig.SignatureInput) -> None:
    """Components and parameters the contract requires (RFC 9421 leaves them to us)."""
    expected = ["@method", "@target-uri"]
    if request.content_length or request.get_data(cache=True):
        expected.append("content-digest")
    if "Authorization" in request.headers:
        expected.append("authorization")
    params = parsed.params
    nonce = params.get("nonce")
    problems = [
        list(parsed.components) != expected,
        params.get("alg") != SIGNATURE_ALG,
        not isinstance(params.get("created"), int),
        not isinstance(nonce, str) or not 8 <= len(nonce) <= _NONCE_MAX,
    ]
    if any(problems):
        raise _refuse(
            session,
            device,
            'Sign "@method" "@target-uri", then "content-digest" with a body and '
            '"authorization" with a token; with created, nonce, keyid and alg="ed25519".',
        )


def _first_use(session: Session, device: Device, nonce: str, created: datetime) -> bool:
    """Record the nonce; False when the device used it within the window already."""
    now = utcnow()
    session.execute(
        delete(SeenNonce)
        .where(
            SeenNonce.nonce.in_(
                select(SeenNonce.nonce)
                .where(SeenNonce.device_id == device.id, SeenNonce.expires_at < now)
                .limit(_PURGE_BATCH)
                .scalar_subquery()
            ),
            SeenNonce.device_id == device.id,
        )
        .execution_options(synchronize_session=False)
    )
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    inserted = session.execute(
        insert(SeenNonce)
        .values(device_id=device.id, nonce=nonce, expires_at=created + 2 * SIGNATURE_WINDOW)
        .on_conflict_do_nothing()
        .returning(SeenNonce.nonce)
    ).first()
    return inserted is not None


def _record(session: Session, device: Device | None, field: str) -> None:
    session.rollback()
    actor = audit.Actor(
        user_id=None,
        role="device",
        office=device.office_code if device else None,
        device=str(device.id) if device else None,
    )
    audit.record(
        AuditAction.SYNC_SIGNATURE_REJECTED,
        fields=[field],
        outcome=Outcome.DENIED,
        actor=actor,
        session=session,
    )
    db.persist_despite_error()


def _refuse(session: Session, device: Device | None, detail: str, **extra: Any) -> BadSignature:
    _record(session, device, "signature")
    return BadSignature(detail, **extra)


def describe_device(session: Session, key: str) -> dict[str, Any] | None:
    """A device as the access log's auditors may know it, by id: its label, office and
    whether it is live; None when ``key`` is no device's id. (Labels are not unique, so a
    device is named by id only.)"""
    try:
        device = session.get(Device, uuid.UUID(key))
    except ValueError:
        return None
    if device is None:
        return None
    return {
        "id": str(device.id),
        "kind": "device",
        "label": device.label,
        "role": None,
        "office": device.office_code,
        "active": not device.is_revoked,
    }
