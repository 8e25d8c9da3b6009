"""Vetting: interviews, checks, duplicate-alert reviews, and the facts the vetting decision
reads. Services never commit.

Every read and write of vetting data is recorded in the access log in the same
transaction, as ``case.read`` / ``case.update`` of fields named
``vetting.interviews.<field>`` and ``vetting.checks.<check>.<field>`` (names,
never values); a review of a duplicate alert is ``alert.review``. Every write
bumps the case's version, so an editor holding an older ETag gets 412 rather
than overwriting.

Importing this module registers :func:`vetting_facts` with the workflow, so
the vetting decision (a transition of ``Process.VETTING``) sees the checks,
the interviewers and the open duplicate alerts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from casework import audit
from casework.audit import AuditAction
from casework.auth.models import User
from casework.authz.access import Principal, deny, deny_as_missing, in_scope
from casework.authz.permissions import Permission, permissions_for
from casework.cases.codes import Stage
from casework.cases.models import Case, DuplicateAlert
from casework.errors import Conflict, NotFound, ValidationFailed
from casework.security.columns import erase_ciphertext
from casework.timestamps import utcnow
from casework.vetting.models import DuplicateAlertReview, VettingCheck, VettingInterview
from casework.vetting.schemas import InterviewStatus, result_errors
from casework.workflow.codes import CHECK_STATUSES, CheckType, MedicalExamination
from casework.workflow.machines import VettingState
from casework.workflow.models import CaseWorkflow
from casework.workflow.schemas import ONLY_WITH_INTERPRETER, REQUIRED_WITH_INTERPRETER

OPEN_VETTING = frozenset({None, VettingState.NOT_STARTED, VettingState.IN_PROGRESS})
"""Vetting states (None: no workflow row yet) in which interviews and checks may change."""
MAX_INTERVIEWS = 100
"""Interviews per case; keeps the list bounded without pagination."""

# Findings readable only with medical:read (its summary: "read medical and screening notes").
RESTRICTED_CHECKS = frozenset({CheckType.MEDICAL_EXAMINATION, CheckType.SECURITY_SCREENING})
INTERVIEW_DATA = (
    "members",
    "scheduled_for",
    "conducted_on",
    "interpreter_used",
    "interpreter_language",
    "notes",
)
NO_SUCH_MEMBER = "No such member in this case."
NEEDS_A_DATE = "Give scheduled_for, conducted_on, or both."
NOT_AN_INTERVIEWER = "Must be an active vetting officer or supervisor of the case's office."
INTERVIEWER_FIXED = "The interviewer of a recorded interview cannot change."
MEDICAL_WRITE = "Recording a medical examination needs the medical:read permission."
RECORDED_BY_OTHERS = "Only its interviewer or whoever recorded it may change a recorded interview."


class NotInVetting(Conflict):
    """409: vetting data is written only while the case is at the vetting stage."""

    slug, title = "case-not-in-vetting", "The case is not at the vetting stage"


class VettingDecided(Conflict):
    """409: after a vetting decision its basis is fixed until the vetting is resumed or reopened."""

    slug, title = "vetting-decided", "The vetting decision is taken"


class TooManyInterviews(Conflict):
    slug, title = "too-many-interviews", "The case has too many interviews"


class AlertAlreadyReviewed(Conflict):
    slug, title = "alert-already-reviewed", "Your office has already reviewed this alert"


class DuplicateAlertsOpen(Conflict):
    """409: identity cannot be verified while duplicate alerts of the case await review."""

    slug, title = "duplicate-alerts-open", "Duplicate alerts remain to be reviewed"


def _require_open_vetting(session: Session, case: Case) -> None:
    """Vetting data is written at the vetting stage, before the decision (or after it is
    reopened): a cleared case's checks cannot change behind the decision that read them."""
    if case.stage != Stage.VETTING:
        raise NotInVetting("Vetting is recorded while the case is at the vetting stage.")
    state = session.scalar(select(CaseWorkflow.vetting).where(CaseWorkflow.case_id == case.id))
    if state not in OPEN_VETTING:
        raise VettingDecided("Resume or reopen the vetting to change what it decided on.")


def _touch(case: Case) -> None:
    case.version += 1
    case.updated_at = utcnow()


def _names(prefix: str, names: Iterable[str]) -> list[str]:
    return sorted({f"{prefix}.{name}" for name in names})


# --- interviews ----------------------------------------------------------------------------


def _scheduled(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def interview_view(interview: VettingInterview) -> dict[str, Any]:
    """An interview decrypted for the API (``InterviewOut``)."""
    interpreter = interview.interpreter or {}
    recorded = interview.is_recorded
    return {
        "id": interview.id,
        "status": InterviewStatus.RECORDED if recorded else InterviewStatus.SCHEDULED,
        "interviewer": interview.interviewer_id,
        "recorded_by": interview.recorded_by,
        "members": [uuid.UUID(m) for m in interview.members or []],
        "scheduled_for": _scheduled(interview.scheduled_for),
        "conducted_on": interview.conducted_on,
        "interpreter_used": bool(interpreter.get("used")),
        "interpreter_language": interpreter.get("language"),
        "notes": interview.notes,
        "created_at": interview.created_at,
        "updated_at": interview.updated_at,
    }


def _interview_fields(views: Iterable[Mapping[str, Any]]) -> list[str]:
    """The names of the sealed interview fields that ``views`` carry with a value."""
    names = {name for view in views for name in INTERVIEW_DATA if view[name] not in (None, [])}
    return _names("vetting.interviews", names)


def list_interviews(session: Session, case: Case) -> list[dict[str, Any]]:
    """Every interview of ``case``, oldest first, recorded as ``case.read``."""
    query = (
        select(VettingInterview)
        .where(VettingInterview.case_id == case.id)
        .order_by(VettingInterview.created_at, VettingInterview.id)
    )
    views = [interview_view(i) for i in session.scalars(query)]
    audit.record(
        AuditAction.CASE_READ,
        target=case.reference,
        fields=_interview_fields(views),
        session=session,
    )
    return views


def _interviewer(session: Session, principal: Principal, case: Case, given: Any) -> str:
    """The interviewer's user id: the caller by default, else a vetting officer of the office."""
    if given is None or str(given) == principal.user_id:
        if principal.user_id is None:
            deny(principal, "Only a member of staff can conduct interviews.")
        assert principal.user_id is not None
        return principal.user_id
    user = session.get(User, given)
    valid = (
        user is not None
        and user.may_sign_in
        and user.office_code == case.office_code
        and Permission.VETTING_CONDUCT in permissions_for(user.role)
    )
    if not valid:
        raise ValidationFailed(errors={"json": {"interviewer": [NOT_AN_INTERVIEWER]}})
    return str(given)


def _check_members(case: Case, members: list[uuid.UUID]) -> None:
    known = {member.id for member in case.members}
    errors = {i: [NO_SUCH_MEMBER] for i, member_id in enumerate(members) if member_id not in known}
    if errors:
        raise ValidationFailed(errors={"json": {"members": errors}})


def _stored_state(interview: VettingInterview) -> dict[str, Any]:
    view = interview_view(interview)
    return {name: view[name] for name in INTERVIEW_DATA}


def _merge(state: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The interview's data after ``changes``; ValidationFailed when it would be inconsistent.

    Turning the interpreter off clears its language; a language is accepted
    only with an interpreter, and required then.
    """
    merged = {**state, **{k: v for k, v in changes.items() if k in INTERVIEW_DATA}}
    errors: dict[str, list[str]] = {}
    if not merged["interpreter_used"]:
        if changes.get("interpreter_language") is not None:
            errors["interpreter_language"] = [ONLY_WITH_INTERPRETER]
        merged["interpreter_language"] = None
    elif merged["interpreter_language"] is None:
        errors["interpreter_language"] = [REQUIRED_WITH_INTERPRETER]
    if merged["scheduled_for"] is None and merged["conducted_on"] is None:
        errors["scheduled_for"] = [NEEDS_A_DATE]
    if errors:
        raise ValidationFailed(errors={"json": errors})
    return merged


def _write(interview: VettingInterview, state: Mapping[str, Any], names: Iterable[str]) -> None:
    """Seal the fields ``names`` of ``state`` into ``interview``."""
    names = set(names)
    if "members" in names:
        interview.members = [str(m) for m in state["members"]]
    if "scheduled_for" in names:
        scheduled = state["scheduled_for"]
        interview.scheduled_for = (
            None if scheduled is None else scheduled.astimezone(UTC).isoformat()
        )
    if "conducted_on" in names:
        interview.conducted_on = state["conducted_on"]
    if names & {"interpreter_used", "interpreter_language"}:
        used = bool(state["interpreter_used"])
        interview.interpreter = {"used": used, "language": state["interpreter_language"]}
    if "notes" in names:
        interview.notes = state["notes"]


def _record_write(session: Session, case: Case, changed: Iterable[str]) -> None:
    _touch(case)
    audit.record(
        AuditAction.CASE_UPDATE,
        target=case.reference,
        fields=_names("vetting.interviews", changed),
        session=session,
    )


def _answer(session: Session, case: Case, interview: VettingInterview) -> dict[str, Any]:
    """The interview as answered to its writer, recorded as a read as well."""
    view = interview_view(interview)
    audit.record(
        AuditAction.CASE_READ,
        target=case.reference,
        fields=_interview_fields([view]),
        session=session,
    )
    return view


def schedule_interview(
    session: Session, principal: Principal, case: Case, data: Mapping[str, Any]
) -> dict[str, Any]:
    """Add an interview (``InterviewIn`` data): scheduled, or recorded at once with
    ``conducted_on`` (its recorder is then the caller). Returns the new interview.

    Raises NotInVetting or VettingDecided (409: the case is not at the vetting
    stage, or its vetting is decided), TooManyInterviews (409) and ValidationFailed
    (members not of the case, an interviewer who cannot interview, interpreter).
    """
    _require_open_vetting(session, case)
    count = session.scalar(select(func.count()).where(VettingInterview.case_id == case.id))
    if (count or 0) >= MAX_INTERVIEWS:
        raise TooManyInterviews(f"A case holds at most {MAX_INTERVIEWS} interviews.")
    _check_members(case, data["members"])
    interviewer = _interviewer(session, principal, case, data.get("interviewer"))
    empty = dict.fromkeys(INTERVIEW_DATA)
    empty["interpreter_used"] = False
    state = _merge(empty, data)
    now = utcnow()
    interview = VettingInterview(
        case_id=case.id,
        interviewer_id=interviewer,
        recorded_by=principal.user_id if state["conducted_on"] is not None else None,
        created_at=now,
        updated_at=now,
    )
    _write(interview, state, INTERVIEW_DATA)  # every sealed column, nulls included
    session.add(interview)
    changed = {name for name in INTERVIEW_DATA if state[name] not in (None, [])}
    _record_write(session, case, changed | {"interviewer"})
    session.flush()
    return _answer(session, case, interview)


def load_interview(session: Session, case: Case, interview_id: uuid.UUID) -> VettingInterview:
    """The interview ``interview_id`` of ``case``; NotFound for any other id."""
    interview = session.get(VettingInterview, interview_id)
    if interview is None or interview.case_id != case.id:
        raise NotFound("No such resource.")
    return interview


def change_interview(
    session: Session,
    principal: Principal,
    case: Case,
    interview_id: uuid.UUID,
    changes: Mapping[str, Any],
) -> dict[str, Any]:
    """Apply a PATCH (``InterviewPatchIn`` data); returns the interview.

    Sending ``conducted_on`` records a scheduled interview (the caller becomes
    its recorder, who may not decide the vetting either). A recorded
    interview's interviewer cannot change, and only its interviewer or
    recorder may change it (403): otherwise a decider could rewrite the
    interview they are about to judge. A change that changes nothing leaves
    the version as it is.
    """
    interview = load_interview(session, case, interview_id)
    if interview.is_recorded and principal.user_id not in (
        interview.interviewer_id,
        interview.recorded_by,
    ):
        deny(principal, RECORDED_BY_OTHERS)
    _require_open_vetting(session, case)
    if "members" in changes:
        _check_members(case, changes["members"])
    changed: set[str] = set()
    if "interviewer" in changes:
        interviewer = _interviewer(session, principal, case, changes["interviewer"])
        if interviewer != interview.interviewer_id:
            if interview.is_recorded:
                raise ValidationFailed(errors={"json": {"interviewer": [INTERVIEWER_FIXED]}})
            interview.interviewer_id = interviewer
            changed.add("interviewer")
    state = _stored_state(interview)
    merged = _merge(state, changes)
    data_changed = {name for name in INTERVIEW_DATA if merged[name] != state[name]}
    _write(interview, merged, data_changed)
    if "conducted_on" in data_changed and not interview.is_recorded:
        interview.recorded_by = principal.user_id
    changed |= data_changed
    if changed:
        interview.updated_at = utcnow()
        _record_write(session, case, changed)
        session.flush()
    return _answer(session, case, interview)


# --- checks --------------------------------------------------------------------------------


def _check_rows(session: Session, case: Case) -> dict[CheckType, VettingCheck]:
    rows = session.scalars(select(VettingCheck).where(VettingCheck.case_id == case.id))
    return {CheckType(row.check_type): row for row in rows}


def check_view(check: CheckType, row: VettingCheck | None, medical: bool) -> dict[str, Any]:
    """One check for the API (``CheckOut``); restricted findings only with ``medical``."""
    result = (row.result if row is not None else None) or {}
    redacted = check in RESTRICTED_CHECKS and not medical
    return {
        "check": check,
        "status": result.get("status", CHECK_STATUSES[check]("pending").value),
        "findings": None if redacted or row is None else row.findings,
        "fit_to_travel": None if redacted else result.get("fit_to_travel"),
        "redacted": redacted,
        "updated_at": None if row is None else row.updated_at,
    }


def _check_fields(views: Iterable[Mapping[str, Any]], recorded: Iterable[CheckType]) -> list[str]:
    """Names of the check fields decrypted for ``views`` (stored statuses and any value)."""
    stored = set(recorded)
    names = []
    for view in views:
        prefix = f"vetting.checks.{view['check']}"
        if view["check"] in stored:
            names.append(f"{prefix}.status")
        names += [f"{prefix}.{n}" for n in ("findings", "fit_to_travel") if view[n] is not None]
    return sorted(names)


def read_checks(session: Session, principal: Principal, case: Case) -> list[dict[str, Any]]:
    """The four checks of ``case`` (pending when never recorded), recorded as ``case.read``."""
    rows = _check_rows(session, case)
    medical = principal.has(Permission.MEDICAL_READ)
    views = [check_view(check, rows.get(check), medical) for check in CheckType]
    audit.record(
        AuditAction.CASE_READ,
        target=case.reference,
        fields=_check_fields(views, rows),
        session=session,
    )
    return views


def record_check(
    session: Session,
    principal: Principal,
    case: Case,
    check: CheckType,
    data: Mapping[str, Any],
) -> dict[str, Any]:
    """Replace the result of ``check`` (``CheckIn`` data); returns the check.

    The medical examination needs ``medical:read`` (403 otherwise). Identity
    verification includes the duplicate alerts: ``verified`` is refused (409)
    while an alert of the case awaits review from its side.
    """
    if check is CheckType.MEDICAL_EXAMINATION and not principal.has(Permission.MEDICAL_READ):
        deny(principal, MEDICAL_WRITE)
    errors = result_errors(check, dict(data))
    if errors:
        raise ValidationFailed(errors={"json": errors})
    _require_open_vetting(session, case)
    verifying = check is CheckType.IDENTITY_VERIFICATION and data["status"] == "verified"
    if verifying and open_duplicate_alerts(session, case):
        raise DuplicateAlertsOpen("Review the case's duplicate alerts first.")
    row = _check_rows(session, case).get(check)
    before = check_view(check, row, medical=True) if row is not None else None
    fit = data.get("fit_to_travel") if check is CheckType.MEDICAL_EXAMINATION else None
    after = {"status": data["status"], "findings": data.get("findings"), "fit_to_travel": fit}
    changed = [n for n in after if before is None or before[n] != after[n]]
    if row is None:
        row = VettingCheck(case_id=case.id, check_type=check.value)
        session.add(row)
    if changed:
        row.result = {"status": after["status"], "fit_to_travel": fit}
        row.findings = after["findings"]
        row.updated_at = utcnow()
        _touch(case)
        audit.record(
            AuditAction.CASE_UPDATE,
            target=case.reference,
            fields=_names(f"vetting.checks.{check.value}", changed),
            session=session,
        )
        session.flush()
    view = check_view(check, row, principal.has(Permission.MEDICAL_READ))
    audit.record(
        AuditAction.CASE_READ,
        target=case.reference,
        fields=_check_fields([view], [check]),
        session=session,
    )
    return view


# --- duplicate-alert review ----------------------------------------------------------------


def _review_exists(alert_id: Any, case_id: Any) -> Any:
    return exists().where(
        DuplicateAlertReview.alert_id == alert_id, DuplicateAlertReview.case_id == case_id
    )


def open_duplicate_alerts(session: Session, case: Case) -> int:
    """How many duplicate alerts of ``case`` have no review from its side."""
    query = select(func.count()).where(
        or_(DuplicateAlert.case_id == case.id, DuplicateAlert.other_case_id == case.id),
        ~_review_exists(DuplicateAlert.id, case.id),
    )
    return int(session.scalar(query) or 0)


def review_alert(
    session: Session, principal: Principal, alert_id: uuid.UUID, data: Mapping[str, Any]
) -> dict[str, Any]:
    """Record the caller's office's review (``AlertReviewIn`` data) of a duplicate alert.

    The review belongs to the alert's case in the caller's office (both, in
    the rare event that both are). An alert without a case in the caller's
    scope answers 404, like a missing one. Raises AlertAlreadyReviewed (409)
    when that side has reviewed it already. Each reviewed case's version is
    bumped: its ``open_duplicate_alerts`` fact changed.
    """
    alert = session.get(DuplicateAlert, alert_id)
    if alert is None:
        raise NotFound("No such resource.")
    cases = session.scalars(select(Case).where(Case.id.in_([alert.case_id, alert.other_case_id])))
    sides = sorted(
        (c for c in cases if in_scope(principal, c.office_code) and not c.is_erased),
        key=lambda c: c.reference,
    )
    if not sides:
        deny_as_missing(principal)
    pending = [c for c in sides if not session.scalar(select(_review_exists(alert.id, c.id)))]
    if not pending:
        raise AlertAlreadyReviewed("Your office has reviewed this alert already.")
    assert principal.user_id is not None  # staff only: the route needs vetting:conduct
    now = utcnow()
    notes = data.get("notes")
    for case in pending:
        review = DuplicateAlertReview(
            alert_id=alert.id, case_id=case.id, reviewed_by=principal.user_id, reviewed_at=now
        )
        review.outcome = str(data["outcome"].value)
        review.notes = notes
        session.add(review)
        _touch(case)
        audit.record(
            AuditAction.ALERT_REVIEW,
            target=case.reference,
            fields=["review.outcome", *(["review.notes"] if notes is not None else [])],
            session=session,
        )
    session.flush()
    return {
        "alert_id": alert.id,
        "references": [c.reference for c in pending],
        "outcome": data["outcome"],
        "notes": notes,
        "reviewed_by": principal.user_id,
        "reviewed_at": now,
    }


# --- workflow facts ------------------------------------------------------------------------


VETTING_FACTS = (
    *(check.value for check in CheckType),
    "fit_to_travel",
    "vetting_interviewers",
    "open_duplicate_alerts",
)


def vetting_facts(session: Session, case: Case) -> dict[str, Any]:
    """The vetting fields of ``CaseFacts`` for ``case``: the only place statuses are decrypted
    outside an audited read (the facts never leave the server).

    ``vetting_interviewers`` holds the interviewer and the recorder of every
    recorded interview: both are the first pair of eyes. An erased case has
    no readable data and gets the pending defaults.
    """
    facts: dict[str, Any] = {check.value: CHECK_STATUSES[check]("pending") for check in CheckType}
    facts["fit_to_travel"] = None
    facts["vetting_interviewers"] = frozenset()
    facts["open_duplicate_alerts"] = 0
    if case.is_erased:
        return facts
    for check, row in _check_rows(session, case).items():
        result = row.result or {}
        facts[check.value] = CHECK_STATUSES[check](result.get("status", "pending"))
        if check is CheckType.MEDICAL_EXAMINATION:
            completed = facts[check.value] == MedicalExamination.COMPLETED
            facts["fit_to_travel"] = result.get("fit_to_travel") if completed else None
    recorded = session.execute(
        select(VettingInterview.interviewer_id, VettingInterview.recorded_by).where(
            VettingInterview.case_id == case.id, VettingInterview.recorded_by.is_not(None)
        )
    ).all()
    facts["vetting_interviewers"] = frozenset(
        user for row in recorded for user in row if user is not None
    )
    facts["open_duplicate_alerts"] = open_duplicate_alerts(session, case)
    return facts


def erase_vetting(session: Session, case: Case) -> None:
    """Erasure: overwrite every interview's and check's sealed columns; ids and times stay.

    (Alert reviews go with the alerts that erasure deletes.)
    """
    for model in (VettingInterview, VettingCheck):
        for row in session.scalars(select(model).where(model.case_id == case.id)):
            erase_ciphertext(row)
