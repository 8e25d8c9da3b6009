"""Retention: a policy two administrators agree on, legal holds, and the erasing run.

The policy gives each retention state (:class:`~casework.reports.codes.RetentionState`)
a period in days, counted from the case's last change (``cases.updated_at``:
closing, a hand-off or an arrival is a change, and so is any later edit, which
restarts the clock). It is kept in the database: an administrator proposes it
and a different administrator approves it; configuration supplies only the
first proposal, which has no proposer until an administrator adopts it, so
configuration alone can never erase anything. A legal hold on a case stops
retention for it while it lasts.

A run erases each due case through :func:`erase_under_policy`, the one way
retention erases: the erasure every other erasure goes through, with the
policy's proposer and approver as its two people, and a tombstone of the
reference, the office and the dates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, or_, select
from sqlalchemy.orm import Session

from casework import audit
from casework.audit import AuditAction
from casework.authz.access import Principal
from casework.cases import erasure_requests
from casework.cases.codes import ResettlementStage, Stage
from casework.cases.models import Case, ErasureRequest
from casework.errors import Conflict, FourEyesRequired, ValidationFailed
from casework.reports.codes import PolicyStatus, RetentionState
from casework.reports.models import LegalHold, RetentionPolicy, RetentionTombstone
from casework.timestamps import utcnow

POLICY_TARGET = "retention-policy"
MAX_DAYS = 100 * 366


class NothingToApprove(Conflict):
    status, slug, title = 409, "nothing-to-approve", "No pending proposal"


# --- the policy -----------------------------------------------------------------------------


def parse_first_proposal(items: list[str]) -> dict[str, int]:
    """``["closed=1825", ...]`` (configuration) as rules; raises ValueError naming the item."""
    rules: dict[str, int] = {}
    for item in items:
        state, _, days = item.partition("=")
        if state.strip() not in set(RetentionState) or not days.strip().isdigit():
            raise ValueError(f"retention_first_proposal: {item!r} is not 'state=days'")
        rules[state.strip()] = int(days)
    return rules


@dataclass(frozen=True)
class PolicyDocument:
    """The policy as the API shows it: the version (ETag), the active rules, a pending proposal."""

    version: int
    active: RetentionPolicy | None
    pending: RetentionPolicy | None


def _latest(session: Session, status: PolicyStatus) -> RetentionPolicy | None:
    query = (
        select(RetentionPolicy)
        .where(RetentionPolicy.status == status.value)
        .order_by(RetentionPolicy.id.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def policy_document(session: Session, first_proposal: dict[str, int]) -> PolicyDocument:
    """The current policy; with nothing stored yet, configuration's proposal at version 0."""
    version = session.scalar(
        select(RetentionPolicy.id).order_by(RetentionPolicy.id.desc()).limit(1)
    )
    if version is None:
        virtual = (
            RetentionPolicy(rules=first_proposal, proposed_by=None) if first_proposal else None
        )
        return PolicyDocument(0, None, virtual)
    return PolicyDocument(
        version, _latest(session, PolicyStatus.ACTIVE), _latest(session, PolicyStatus.PENDING)
    )


def _discard_pending(session: Session) -> None:
    for row in session.scalars(
        select(RetentionPolicy).where(RetentionPolicy.status == PolicyStatus.PENDING.value)
    ):
        row.status = PolicyStatus.DISCARDED.value


def propose(session: Session, principal: Principal, rules: dict[str, int]) -> RetentionPolicy:
    """Store ``rules`` as the pending proposal of ``principal`` (replacing any pending one)."""
    _discard_pending(session)
    row = RetentionPolicy(rules=dict(sorted(rules.items())), proposed_by=principal.user_id)
    session.add(row)
    session.flush()  # the id is the policy's new version
    audit.record(
        AuditAction.RETENTION_PROPOSE, target=POLICY_TARGET, fields=sorted(rules), session=session
    )
    return row


def approve(session: Session, principal: Principal, document: PolicyDocument) -> RetentionPolicy:
    """Approve the pending proposal: it becomes the active policy.

    A proposal from configuration is *adopted* instead: the caller becomes its
    proposer and a second administrator must approve it. Raises
    :class:`NothingToApprove` and :class:`FourEyesRequired` (the proposer).
    """
    pending = document.pending
    if pending is None:
        raise NothingToApprove("There is no pending retention-policy proposal.")
    if pending.proposed_by is None:
        return propose(session, principal, dict(pending.rules))
    if pending.proposed_by == principal.user_id:
        raise FourEyesRequired("The proposer cannot approve their own retention policy.")
    if document.active is not None:
        document.active.status = PolicyStatus.SUPERSEDED.value
    pending.status = PolicyStatus.ACTIVE.value
    pending.approved_by = principal.user_id
    pending.approved_at = utcnow()
    session.flush()
    audit.record(
        AuditAction.RETENTION_APPROVE,
        target=POLICY_TARGET,
        fields=sorted(pending.rules),
        session=session,
    )
    return pending


def active_policy(session: Session) -> RetentionPolicy | None:
    return _latest(session, PolicyStatus.ACTIVE)


# --- legal holds ----------------------------------------------------------------------------


def set_legal_hold(
    session: Session, principal: Principal, case: Case, hold: bool, reason: str | None
) -> LegalHold:
    """Put ``case`` under legal hold or lift it; bumps the case's version, audited.

    The retention clock (``updated_at``) is left alone: a hold pauses retention,
    it does not make the case younger. Raises ValidationFailed for a hold without reason.
    """
    if hold and not reason:
        raise ValidationFailed(errors={"json": {"reason": ["A legal hold needs a reason."]}})
    row = session.get(LegalHold, case.id)
    if row is None:
        row = LegalHold(case_id=case.id, changed_by=principal.user_id or "")
        session.add(row)
    row.is_held = hold
    row.reason = reason
    row.changed_by = principal.user_id or ""
    row.changed_at = utcnow()
    case.version += 1
    session.flush()
    audit.record(
        AuditAction.CASE_LEGAL_HOLD,
        target=case.reference,
        fields=["legal_hold.hold", "legal_hold.reason"],
        session=session,
    )
    return row


def erase_holds(session: Session, case: Case) -> None:
    """Erasure hook: the hold row (its sealed reason) goes with the case."""
    session.execute(delete(LegalHold).where(LegalHold.case_id == case.id))


# --- the run --------------------------------------------------------------------------------


def _state_clause(state: str) -> Any:
    if state == RetentionState.CLOSED:
        return Case.stage == Stage.CLOSED.value
    if state == RetentionState.HANDED_OFF:
        return Case.stage == Stage.HANDED_OFF.value
    return Case.resettlement_stage == ResettlementStage.ARRIVED.value


def due_cases(
    session: Session,
    policy: RetentionPolicy,
    now: datetime,
    references: Sequence[str] | None = None,
) -> list[Case]:
    """Live cases in a state of ``policy`` unchanged for its period, not under legal hold
    (among ``references`` when given)."""
    clauses = [
        and_(_state_clause(state), Case.updated_at <= now - timedelta(days=days))
        for state, days in policy.rules.items()
    ]
    if not clauses:
        return []
    held = exists().where(LegalHold.case_id == Case.id, LegalHold.is_held.is_(True))
    query = (
        select(Case).where(Case.erased_at.is_(None), or_(*clauses), ~held).order_by(Case.reference)
    )
    return list(session.scalars(query))


class NoActivePolicy(Conflict):
    status, slug, title = 409, "no-retention-policy", "No approved retention policy"


def erase_under_policy(session: Session, case: Case, policy: RetentionPolicy) -> RetentionTombstone:
    """Erase ``case`` as retention does: the one path, with the policy's two people.

    It is the erasure every other erasure is: an erasure request
    (:mod:`casework.cases.erasure_requests`) asked for by the policy's proposer
    and approved by its approver, whose approval runs ``erase_case`` (the data
    key shredded and marked for the shred step, every feature's hook, the
    ciphertext overwritten). The request's reason names the policy version
    only, and is sealed under the case key like any other.
    """
    tombstone = RetentionTombstone(
        reference=case.reference,
        office_code=case.office_code,
        registered_at=case.created_at,
        last_changed_at=case.updated_at,
        erased_at=utcnow(),
        policy_id=policy.id,
    )
    proposer = Principal.for_role("admin", user_id=policy.proposed_by, office=None)
    approver = Principal.for_role("admin", user_id=policy.approved_by, office=None)
    reason = f"Retention policy version {policy.id}: the retention period has passed."
    asked = erasure_requests.request_erasure(session, proposer, case, reason)
    request = session.get(ErasureRequest, asked["id"])
    if request is None:  # pragma: no cover - just flushed in this transaction
        raise RuntimeError("the erasure request was not stored")
    erasure_requests.approve(session, approver, request, case)
    session.add(tombstone)
    audit.record(
        AuditAction.RETENTION_ERASE,
        target=case.reference,
        fields=["retention_policy.proposed_by", "retention_policy.approved_by"],
        session=session,
    )
    session.flush()
    return tombstone


def run(
    session: Session,
    *,
    dry_run: bool,
    now: datetime | None = None,
    references: Sequence[str] | None = None,
) -> list[str]:
    """The references of the cases due (among ``references`` when given: a command erases
    in batches, each re-checked in its own transaction); erased unless ``dry_run``.

    Raises NoActivePolicy.
    """
    policy = active_policy(session)
    if policy is None or policy.approved_by is None or policy.proposed_by is None:
        raise NoActivePolicy("No retention policy has been proposed and approved.")
    due = due_cases(session, policy, now or utcnow(), references)
    if not dry_run:
        for case in due:
            erase_under_policy(session, case, policy)
    return [case.reference for case in due]
