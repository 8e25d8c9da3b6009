"""Consent records, partners and hand-offs: the rules. Services never commit.

At import this module joins the workflow (:mod:`casework.workflow.facts`):

* a fact source giving ``consents`` (decrypted records) and ``handoff`` (the
  case's latest hand-off) to the guards;
* effects of the hand-off transitions: approval records the approver,
  acceptance moves the case to the receiving office, declining and revoking
  close the record, sending to a partner builds the package;
* a scope extension: a case with an approved hand-off to the caller's office
  is reachable by that office's staff who may accept it, for the transition
  only (the full case read stays in the owning office until acceptance).

Every change of case data bumps the case version and is recorded in the
access log with field names only.
"""

from __future__ import annotations

import base64
import functools
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.orm import Session, aliased

from casework import audit
from casework.audit import AuditAction
from casework.authz.access import Principal
from casework.authz.permissions import Permission
from casework.cases.indexes import keyring_of
from casework.cases.models import Case
from casework.cases.reference import InvalidReference, normalise_reference
from casework.cases.service import bulk_intake
from casework.errors import CaseworkError, Conflict, NotFound, ValidationFailed
from casework.handoff import keys
from casework.handoff.models import (
    ConsentRow,
    Handoff,
    Partner,
)
from casework.handoff.package import (
    EXPORTABLE_FIELDS,
    ImportRefused,
    household_from,
    package_fields,
    received_names,
    recipient_key_of,
    sender_key_of,
)
from casework.handoff.partner_package import (
    PackageSignatureError,
    key_fingerprint,
    load_partner_public_key,
    open_package,
    seal_package,
)
from casework.offices.models import Office
from casework.pagination import decode_cursor, encode_cursor, time_id_cursor, time_id_position
from casework.security.columns import erase_ciphertext
from casework.security.keyring import Keyring
from casework.timestamps import utcnow
from casework.workflow import facts as workflow_facts
from casework.workflow.codes import HandoffKind
from casework.workflow.consent import ConsentPurpose, ConsentRecord, consented_fields
from casework.workflow.guards import Handoff as HandoffFact
from casework.workflow.machines import HandoffStatus, Process

NO_SUCH_MEMBER = "Not a member of this case."
NOT_A_CASE_FIELD = "Not a case field that can travel."
NO_SUCH_OFFICE = "No such active office."
NO_SUCH_PARTNER = "No such active partner."
PARTNER_EXISTS = "A partner with this code is already registered."
ALREADY_WITHDRAWN = "This consent is already withdrawn."
USE_HANDOFF_ENDPOINT = "Request a hand-off with POST /api/v1/cases/{reference}/handoffs."
NOTHING_CONSENTED = "Valid consent names no case field that can travel to this partner."
PARTNER_INACTIVE = "The partner is deactivated."
STAFF_ONLY = "Only a staff user can request a hand-off."

CONSENT_READ_FIELDS = (
    "consents.purpose",
    "consents.recipients",
    "consents.given_by",
    "consents.given_at",
    "consents.expires_at",
    "consents.fields",
    "consents.withdrawn_at",
)


class PackageGone(CaseworkError):
    """410: the recipient acknowledged the package, and it is no longer kept."""

    status, slug, title = 410, "package-acknowledged", "The package was already acknowledged"


def _bump(case: Case) -> None:
    """Every write of a case moves its version, so concurrent editors conflict."""
    case.version += 1
    case.updated_at = utcnow()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _when(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


# --- consent ------------------------------------------------------------------------------


def consent_rows(session: Session, case: Case) -> list[ConsentRow]:
    return list(session.scalars(select(ConsentRow).where(ConsentRow.case_id == case.id)))


def to_record(row: ConsentRow) -> ConsentRecord:
    """The decrypted row as the workflow's pure :class:`ConsentRecord`."""
    given = row.consent or {}
    withdrawal = row.withdrawal or {}
    given_at = _when(given["given_at"])
    assert given_at is not None
    return ConsentRecord(
        purpose=ConsentPurpose(given["purpose"]),
        recipients=frozenset(given["recipients"]),
        given_by=given["given_by"],
        given_at=given_at,
        expires_at=_when(given.get("expires_at")),
        withdrawn_at=_when(withdrawal.get("at")),
        fields=frozenset(given.get("fields") or ()),
    )


def consent_view(row: ConsentRow, now: datetime | None = None) -> dict[str, Any]:
    """A consent decrypted for the API (``ConsentOut``)."""
    record = to_record(row)
    moment = now or datetime.now(UTC)
    return {
        "id": row.id,
        "purpose": record.purpose.value,
        "recipients": sorted(record.recipients),
        "given_by": record.given_by,
        "given_at": record.given_at,
        "expires_at": record.expires_at,
        "fields": sorted(record.fields),
        "withdrawn_at": record.withdrawn_at,
        "valid": record.is_valid(record.purpose, next(iter(record.recipients)), moment),
    }


def _ordered(rows: Sequence[ConsentRow]) -> list[ConsentRow]:
    # Nothing but ids is plaintext: order by the decrypted given time, then id.
    return sorted(rows, key=lambda r: (to_record(r).given_at, str(r.id)))


def list_consents(session: Session, case: Case) -> list[dict[str, Any]]:
    """The case's consent records, oldest first; recorded as a ``case.read`` of them."""
    views = [consent_view(row) for row in _ordered(consent_rows(session, case))]
    audit.record(
        AuditAction.CASE_READ,
        target=case.reference,
        fields=CONSENT_READ_FIELDS if views else (),
        session=session,
    )
    return views


def _check_consent(case: Case, data: Mapping[str, Any]) -> None:
    errors: dict[str, Any] = {}
    if data["given_by"] not in {member.id for member in case.members}:
        errors["given_by"] = [NO_SUCH_MEMBER]
    unknown = {
        i: [NOT_A_CASE_FIELD]
        for i, name in enumerate(data.get("fields") or ())
        if name not in EXPORTABLE_FIELDS
    }
    if unknown:
        errors["fields"] = unknown
    if errors:
        raise ValidationFailed(errors={"json": errors})


def record_consent(
    session: Session, principal: Principal, case: Case, data: Mapping[str, Any]
) -> ConsentRow:
    """Store a consent (``ConsentIn`` data) given by a member of ``case``; bump its version.

    Raises ValidationFailed for a member of another case or a field name that
    names no case field.
    """
    _check_consent(case, data)
    given = {
        "purpose": ConsentPurpose(data["purpose"]).value,
        "recipients": sorted(data["recipients"]),
        "given_by": str(data["given_by"]),
        "given_at": _iso(data["given_at"]),
        "expires_at": _iso(data.get("expires_at")),
        "fields": sorted(data.get("fields") or ()),
        "recorded_by": principal.user_id,
    }
    row = ConsentRow(case_id=case.id, consent=given)
    session.add(row)
    _bump(case)
    written = [f"consents.{name}" for name in ("purpose", "recipients", "given_by", "given_at")]
    written += ["consents.expires_at"] if given["expires_at"] else []
    written += ["consents.fields"] if given["fields"] else []
    audit.record(AuditAction.CONSENT_RECORD, target=case.reference, fields=written, session=session)
    session.flush()
    return row


def withdraw_consent(
    session: Session, principal: Principal, case: Case, consent_id: uuid.UUID
) -> ConsentRow:
    """Withdraw a consent now; from this moment no guard counts it.

    Raises NotFound for a consent of another case and Conflict when it is
    already withdrawn.
    """
    row = session.get(ConsentRow, consent_id)
    if row is None or row.case_id != case.id:
        raise NotFound("No such consent in this case.")
    if row.withdrawal is not None:
        raise Conflict(ALREADY_WITHDRAWN)
    row.withdrawal = {"at": _iso(utcnow()), "by": principal.user_id}
    _bump(case)
    audit.record(
        AuditAction.CONSENT_WITHDRAW,
        target=case.reference,
        fields=["consents.withdrawn_at"],
        session=session,
    )
    session.flush()
    return row


# --- partners -----------------------------------------------------------------------------


def partner_view(partner: Partner) -> dict[str, Any]:
    public = load_partner_public_key(partner.public_key)
    return {
        "code": partner.code,
        "name": partner.name,
        "public_key": keys.b64(partner.public_key),
        "public_key_fingerprint": key_fingerprint(public),
        "verify_key": None if partner.verify_key is None else keys.b64(partner.verify_key),
        "active": partner.is_active,
        "version": partner.version,
        "created_at": partner.created_at,
    }


def register_partner(session: Session, principal: Principal, data: Mapping[str, Any]) -> Partner:
    """Register a partner (``PartnerCreateIn`` data); Conflict when the code is taken."""
    if session.scalar(select(Partner.id).where(Partner.code == data["code"])) is not None:
        raise Conflict(PARTNER_EXISTS)
    verify = data.get("verify_key")
    now = utcnow()
    partner = Partner(
        code=data["code"],
        name=data["name"],
        public_key=base64.b64decode(data["public_key"]),
        verify_key=None if verify is None else base64.b64decode(verify),
        is_active=True,
        created_by=principal.user_id,
        created_at=now,
        updated_at=now,
    )
    session.add(partner)
    session.flush()
    audit.record(
        AuditAction.PARTNER_REGISTER,
        target=f"partner:{partner.code}",
        fields=[name for name in ("code", "name", "public_key", "verify_key") if name in data],
        session=session,
    )
    return partner


def list_partners(
    session: Session, *, limit: int, cursor: str | None
) -> tuple[list[Partner], str | None]:
    """Partners by code, one page."""
    query = select(Partner).order_by(Partner.code).limit(limit + 1)
    if cursor:
        after = decode_cursor(cursor).get("code")
        if not isinstance(after, str):
            raise ValidationFailed(errors={"query": {"cursor": ["Not a valid cursor."]}})
        query = query.where(Partner.code > after)
    found = list(session.scalars(query))
    page = found[:limit]
    audit.record(AuditAction.PARTNER_READ, session=session)
    return page, encode_cursor({"code": page[-1].code}) if len(found) > limit else None


def get_partner(session: Session, code: str, *, for_update: bool = False) -> Partner:
    """The partner with ``code``; NotFound otherwise."""
    query = select(Partner).where(Partner.code == code)
    partner = session.scalar(query.with_for_update() if for_update else query)
    if partner is None:
        raise NotFound("No such partner.")
    return partner


def read_partner(session: Session, code: str) -> Partner:
    """One partner, recorded as ``partner.read``."""
    partner = get_partner(session, code)
    audit.record(AuditAction.PARTNER_READ, target=f"partner:{partner.code}", session=session)
    return partner


def deactivate_partner(session: Session, partner: Partner) -> Partner:
    """Stop sending to a partner (the caller checked If-Match on ``partner.version``);
    open hand-offs to it can no longer be sent."""
    partner.is_active = False
    partner.version += 1
    partner.updated_at = utcnow()
    session.flush()
    audit.record(
        AuditAction.PARTNER_DEACTIVATE,
        target=f"partner:{partner.code}",
        fields=["is_active"],
        session=session,
    )
    return partner


# --- hand-offs ----------------------------------------------------------------------------


def latest_handoff(session: Session, case_id: uuid.UUID) -> Handoff | None:
    query = (
        select(Handoff)
        .where(Handoff.case_id == case_id)
        .order_by(Handoff.requested_at.desc(), Handoff.id.desc())
        .limit(1)
    )
    found: Handoff | None = session.scalar(query)
    return found


def handoff_view(row: Handoff) -> dict[str, Any]:
    """A hand-off for both offices (``HandoffOut``): codes, ids, statuses, times."""
    return {
        "id": row.id,
        "reference": row.case.reference,
        "case_version": row.case.version,
        "kind": row.kind,
        "status": row.status,
        "from_office": row.from_office,
        "to_office": row.to_office,
        "partner": row.partner.code if row.partner is not None else None,
        "requested_by": row.requested_by,
        "requested_at": row.requested_at,
        "approved_by": row.approved_by,
        "approved_at": row.approved_at,
        "closed_at": row.closed_at,
        "package_available": row.package is not None,
    }


def _target(session: Session, data: Mapping[str, Any]) -> dict[str, Any]:
    if data["kind"] == HandoffKind.OFFICE:
        office = session.get(Office, data["office"])
        if office is None or not office.is_active:
            raise ValidationFailed(errors={"json": {"office": [NO_SUCH_OFFICE]}})
        return {"to_office": office.code}
    partner = session.scalar(select(Partner).where(Partner.code == data["partner"]))
    if partner is None or not partner.is_active:
        raise ValidationFailed(errors={"json": {"partner": [NO_SUCH_PARTNER]}})
    return {"partner_id": partner.id, "partner": partner}


def request_handoff(
    session: Session, principal: Principal, case: Case, data: Mapping[str, Any]
) -> Handoff:
    """Create a hand-off (``HandoffIn`` data) and take the ``request`` transition.

    The transition's guards see the new record (target, consent for a
    partner); a refusal raises and the request's rollback drops the record.
    """
    if principal.user_id is None:
        raise ValidationFailed(STAFF_ONLY)
    row = Handoff(
        case_id=case.id,
        kind=HandoffKind(data["kind"]).value,
        status=HandoffStatus.REQUESTED.value,
        from_office=case.office_code,
        requested_by=principal.user_id,
        requested_at=utcnow(),
        **_target(session, data),
    )
    session.add(row)
    session.flush()  # the workflow's fact source reads the new record
    from casework.workflow import service as workflow_service

    workflow_service.transition(
        session, principal, case, {"process": Process.HANDOFF, "to": HandoffStatus.REQUESTED}
    )
    audit.record(
        AuditAction.HANDOFF_REQUEST,
        target=case.reference,
        fields=["handoff.kind", "handoff.target"],
        session=session,
    )
    return row


def list_handoffs(
    session: Session, principal: Principal, *, limit: int, cursor: str | None
) -> tuple[list[Handoff], str | None]:
    """Hand-offs from or to the caller's office, newest first; none for officeless callers."""
    if principal.office is None:
        return [], None
    office = principal.office
    query = (
        select(Handoff)
        .where(or_(Handoff.from_office == office, Handoff.to_office == office))
        .order_by(Handoff.requested_at.desc(), Handoff.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        at, after = time_id_position(cursor)
        query = query.where(
            or_(
                Handoff.requested_at < at,
                and_(Handoff.requested_at == at, Handoff.id < after),
            )
        )
    found = list(session.scalars(query))
    page = found[:limit]
    next_cursor = None
    if len(found) > limit:
        next_cursor = time_id_cursor(page[-1].requested_at, page[-1].id)
    return page, next_cursor


def _kept_package(session: Session, case: Case, handoff_id: uuid.UUID) -> Handoff:
    row = session.get(Handoff, handoff_id)
    if row is None or row.case_id != case.id or row.kind != HandoffKind.PARTNER:
        raise NotFound("No such hand-off package for this case.")
    if row.package is None:
        if row.package_downloaded_at is not None:
            raise PackageGone("The package was acknowledged and deleted; send the case again.")
        raise NotFound("No such hand-off package for this case.")
    return row


def read_package(session: Session, case: Case, handoff_id: uuid.UUID) -> bytes:
    """The partner package of a sent hand-off. Safe and repeatable (a download that broke
    off can be retried) until the recipient acknowledges it. Raises NotFound (no such
    hand-off of this case, or no package) and :class:`PackageGone` once acknowledged.
    Recorded as ``handoff.export`` with the names of the fields the package carries."""
    row = _kept_package(session, case, handoff_id)
    audit.record(
        AuditAction.HANDOFF_EXPORT,
        target=case.reference,
        fields=row.package_fields or [],
        session=session,
    )
    assert row.package is not None  # _kept_package refused the others
    return row.package


def acknowledge_package(
    session: Session, principal: Principal, case: Case, handoff_id: uuid.UUID
) -> None:
    """The recipient holds the package: drop the server's copy (the ciphertext, sealed to
    the partner) and record who confirmed it when (``package_downloaded_*``).
    :class:`PackageGone` on a repeat."""
    row = _kept_package(session, case, handoff_id)
    row.package = None
    row.package_downloaded_at = utcnow()
    row.package_downloaded_by = principal.user_id
    audit.record(
        AuditAction.HANDOFF_ACKNOWLEDGE, target=case.reference, fields=["package"], session=session
    )
    session.flush()


# --- joining the workflow -----------------------------------------------------------------


@functools.cache
def _consents_and_latest_statement() -> Any:
    """The case row outer-joined to its consents and its latest hand-off (one row per
    consent, each carrying the same hand-off); built once, bound to ``case_id``."""
    earlier = aliased(Handoff)
    latest_id = (
        select(earlier.id)
        .where(earlier.case_id == bindparam("case_id", type_=Case.id.type))
        .order_by(earlier.requested_at.desc(), earlier.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return (
        select(ConsentRow, Handoff)
        .select_from(Case)
        .outerjoin(ConsentRow, ConsentRow.case_id == Case.id)
        .outerjoin(Handoff, Handoff.id == latest_id)
        .where(Case.id == bindparam("case_id", type_=Case.id.type))
    )


def _consents_and_latest(session: Session, case: Case) -> tuple[list[ConsentRow], Handoff | None]:
    """The case's consent records and its latest hand-off, in one statement."""
    rows = session.execute(_consents_and_latest_statement(), {"case_id": case.id}).all()
    consents = [row[0] for row in rows if row[0] is not None]
    return consents, next((row[1] for row in rows if row[1] is not None), None)


def handoff_facts(session: Session, case: Case) -> dict[str, Any]:
    """``consents`` and ``handoff`` of :class:`~casework.workflow.guards.CaseFacts`."""
    consents, latest = _consents_and_latest(session, case)
    records = tuple(to_record(row) for row in consents)
    fact = None
    if latest is not None:
        fact = HandoffFact(
            kind=HandoffKind(latest.kind),
            target=latest.target,
            requested_by=latest.requested_by,
            approved_by=latest.approved_by,
        )
    return {"consents": records, "handoff": fact}


def _current(context: workflow_facts.TransitionContext) -> Handoff:
    row = latest_handoff(context.session, context.case.id)
    if row is None:
        raise Conflict(USE_HANDOFF_ENDPOINT)
    return row


def _close(context: workflow_facts.TransitionContext, status: HandoffStatus) -> Handoff:
    row = _current(context)
    row.status = status.value
    row.closed_by = context.actor.user_id
    row.closed_at = context.now
    return row


def _on_request(context: workflow_facts.TransitionContext) -> None:
    """Only a record made by this request may be requested: the hand-off endpoint makes it."""
    row = _current(context)
    fresh = row.status == HandoffStatus.REQUESTED and row.approved_by is None
    if not fresh or row.requested_by != context.actor.user_id:
        raise Conflict(USE_HANDOFF_ENDPOINT)


def _on_approve(context: workflow_facts.TransitionContext) -> None:
    row = _current(context)
    row.status = HandoffStatus.APPROVED.value
    row.approved_by = context.actor.user_id
    row.approved_at = context.now
    _log(context, AuditAction.HANDOFF_APPROVE)


def _on_accept(context: workflow_facts.TransitionContext) -> None:
    """The receiving office owns the case from now; the sender sees it no more."""
    row = _close(context, HandoffStatus.ACCEPTED)
    if row.to_office is None:  # the handoff_to_office guard makes this unreachable
        raise Conflict("This hand-off is not to another office.")
    context.case.office_code = row.to_office
    _log(context, AuditAction.HANDOFF_ACCEPT, ["office"])


def _on_decline(context: workflow_facts.TransitionContext) -> None:
    _close(context, HandoffStatus.DECLINED)
    _log(context, AuditAction.HANDOFF_DECLINE)


def _on_revoke(context: workflow_facts.TransitionContext) -> None:
    _close(context, HandoffStatus.REVOKED)
    _log(context, AuditAction.HANDOFF_REVOKE)


def _on_send(context: workflow_facts.TransitionContext) -> None:
    """Seal the consented fields to the partner and sign them; keep the package for download."""
    row = _current(context)
    partner = row.partner
    if partner is None:  # the handoff_to_partner guard makes this unreachable
        raise Conflict("This hand-off is not to a partner organisation.")
    if not partner.is_active:
        raise Conflict(PARTNER_INACTIVE)
    allowed = consented_fields(context.facts.consents, partner.code, context.now)
    fields, names = package_fields(context.case, allowed)
    if not names:
        raise Conflict(NOTHING_CONSENTED)
    metadata = {
        "reference": context.case.reference,
        "partner": partner.code,
        "sent_at": context.now.isoformat(),
        "fields": names,
    }
    keyring = keyring_of(context.session)
    row.package = seal_package(
        fields, load_partner_public_key(partner.public_key), keys.signing_key(keyring), metadata
    )
    row.package_fields = names
    row.package_built_at = context.now
    _close(context, HandoffStatus.SENT)


def _log(
    context: workflow_facts.TransitionContext, action: AuditAction, fields: Sequence[str] = ()
) -> None:
    audit.record(action, target=context.case.reference, fields=fields, session=context.session)


def receiving_office_scope(session: Session, principal: Principal, reference: str) -> Case | None:
    """A case with an approved hand-off to the caller's office, for those who may accept it."""
    if principal.office is None or not principal.has(Permission.HANDOFF_ACCEPT):
        return None
    try:
        canonical = normalise_reference(reference)
    except InvalidReference:
        return None
    case = session.scalar(select(Case).where(Case.reference == canonical))
    if case is None or case.is_erased:
        return None
    latest = latest_handoff(session, case.id)
    if (
        latest is not None
        and latest.kind == HandoffKind.OFFICE
        and latest.status == HandoffStatus.APPROVED
        and latest.to_office == principal.office
    ):
        return case
    return None


# --- importing a package from a partner ---------------------------------------------------


def _sender(session: Session, blob: bytes, sender_code: str | None) -> Ed25519PublicKey:
    """The verification key of the partner who signed ``blob``, or PackageSignatureError."""
    query = select(Partner).where(Partner.verify_key.is_not(None))
    if sender_code is not None:
        query = query.where(Partner.code == sender_code)
    else:
        query = query.where(Partner.verify_key == sender_key_of(blob))
    partner = session.scalar(query)
    if partner is None or partner.verify_key is None:
        raise PackageSignatureError("the package is signed by a key no registered partner holds")
    return Ed25519PublicKey.from_public_bytes(partner.verify_key)


def import_package(
    session: Session,
    keyring: Keyring,
    blob: bytes,
    office: str,
    sender_code: str | None = None,
) -> Case:
    """Verify, decrypt and register ``blob`` as a new case of ``office``.

    Raises a :class:`~casework.handoff.partner_package.PackageError` (with a
    message that names no value) for a package that is malformed, altered,
    signed by an unknown key, sealed to another key, or not a valid
    household; nothing is written then. ValidationFailed for an unknown office.
    """
    verify = _sender(session, blob, sender_code)
    receiving = keys.receiving_key_for(keyring, recipient_key_of(blob))
    private = receiving or keys.receiving_keys(keyring)[0]  # open_package then says why
    _metadata, fields = open_package(blob, private, verify)
    household = household_from(fields, office)
    (case,) = bulk_intake(session, office, [household])
    audit.record(
        AuditAction.HANDOFF_IMPORT,
        target=case.reference,
        fields=received_names(fields),
        session=session,
    )
    return case


__all__ = ["ImportRefused", "import_package"]


def erase_handoff_data(session: Session, case: Case) -> None:
    """Erasure: overwrite consent records and hand-off field lists; delete undelivered packages.

    A partner package is sealed to the partner, not under the case's data
    key, so shredding the key does not make it noise: it must go.
    """
    for consent in session.scalars(select(ConsentRow).where(ConsentRow.case_id == case.id)):
        erase_ciphertext(consent)
    for handoff in session.scalars(select(Handoff).where(Handoff.case_id == case.id)):
        erase_ciphertext(handoff)
        handoff.package = None


# What the hand-off feature registers on the workflow, by ``casework.handoff.init_app``.
HANDOFF_FACTS = ("consents", "handoff")
TRANSITION_EFFECTS = (
    (HandoffStatus.REQUESTED, _on_request),
    (HandoffStatus.APPROVED, _on_approve),
    (HandoffStatus.ACCEPTED, _on_accept),
    (HandoffStatus.DECLINED, _on_decline),
    (HandoffStatus.REVOKED, _on_revoke),
    (HandoffStatus.SENT, _on_send),
)
