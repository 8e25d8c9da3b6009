"""Workflow of one case: facts, transitions, the submission and the best-interests assessment.

Services never commit. Every function that changes a case bumps its version
(so concurrent editors conflict rather than overwrite) and records one access
log entry with field *names*; functions that answer with decrypted workflow
data record a ``case.read`` naming what they returned.

The engine (:mod:`casework.workflow.engine`) decides; this module builds the
facts it decides on, applies what it allows (both rows of a companion step or
neither, all in the caller's transaction) and remembers who took the steps
that a second person must not repeat.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from casework import audit
from casework.audit import AuditAction
from casework.authz.access import Principal, in_scope
from casework.authz.permissions import Permission
from casework.cases.codes import ResettlementStage, Stage
from casework.cases.models import Case
from casework.cases.reference import InvalidReference, normalise_reference
from casework.cases.service import CaseErased, load_case, loaded_with_case, plain
from casework.errors import Conflict
from casework.security.columns import erase_ciphertext
from casework.timestamps import utcnow
from casework.workflow import engine, facts
from casework.workflow.guards import Actor, CaseFacts, Submission
from casework.workflow.machines import (
    ACTIVE_STAGES,
    DeterminationStage,
    HandoffStatus,
    Process,
    Transition,
    VettingState,
    transitions_from,
)
from casework.workflow.models import CaseWorkflow

_CHOICE_FIELDS = ("reason", "outcome", "decision")
# CaseFacts fields this module provides; a fact source claiming one is a bug.
_OWN_FACTS = frozenset(
    {
        "office",
        "now",
        "stage",
        "last_active_stage",
        "vetting",
        "determination",
        "resettlement",
        "handoff_status",
        "specific_needs",
        "vetting_referred_by",
        "assessment_authors",
        "first_instance_decided_by",
        "first_instance_outcome",
        "appeal_outcome",
        "rrf_preparers",
        "submission",
        "state_decision",
        "best_interests_assessment_done",
    }
)
# Resettlement stages in which the submission may still be drafted; from review on it is fixed.
SUBMISSION_EDITABLE = frozenset(
    {
        ResettlementStage.IDENTIFIED,
        ResettlementStage.NEEDS_ASSESSMENT,
        ResettlementStage.INTERVIEW,
        ResettlementStage.RRF_PREPARATION,
    }
)
SUBMISSION_FIELDS = ("destination_country", "priority", "categories")
_OUTCOMES = (Permission.DETERMINATION_ASSESS, Permission.DETERMINATION_DECIDE)
_RESETTLEMENT = (Permission.RESETTLEMENT_PREPARE, Permission.RESETTLEMENT_REVIEW)
# Sealed members of the workflow view, by the permissions that may see them.
_VISIBLE_WITH: Mapping[str, tuple[Permission, ...]] = {
    "first_instance_outcome": _OUTCOMES,
    "appeal_outcome": _OUTCOMES,
    "state_decision": _RESETTLEMENT,
    "submission": _RESETTLEMENT,
    "best_interests_assessment": (Permission.CASES_WRITE,),
    "closure_reason": (Permission.CASES_READ,),
    "reopen_reason": (Permission.CASES_READ,),
}


class SubmissionLocked(Conflict):
    """409: the submission is fixed once under review or submitted, or the case is inactive."""

    slug, title = "submission-locked", "The submission cannot change now"


# --- loading -------------------------------------------------------------------------------


def load_for_transition(session: Session, principal: Principal, reference: str) -> Case:
    """The case ``reference``, locked, for a transition by ``principal``.

    A case outside the caller's office is reachable only through a registered
    scope extension (an office a hand-off is addressed to may accept it);
    otherwise :func:`load_case` answers 404 (recording the refusal) or 410.
    """
    reached = _reached_by_extension(session, principal, reference)
    if reached is None:
        return load_case(session, principal, reference, Permission.CASES_READ, for_update=True)
    if reached.is_erased:
        raise CaseErased("This case was erased; only its change history remains.")
    query = select(Case).where(Case.id == reached.id).with_for_update(of=Case)
    locked: Case = session.scalars(query.execution_options(populate_existing=True)).one()
    return locked


def _reached_by_extension(session: Session, principal: Principal, reference: str) -> Case | None:
    try:
        canonical = normalise_reference(reference)
    except InvalidReference:
        return None
    owner = session.scalar(select(Case.office_code).where(Case.reference == canonical))
    if owner is None or in_scope(principal, owner) or not principal.has(Permission.CASES_READ):
        return None
    return facts.extended_scope(session, principal, canonical)


def _row(session: Session, case: Case) -> CaseWorkflow | None:
    return session.get(CaseWorkflow, case.id)


def erase_workflow(session: Session, case: Case) -> None:
    """Erasure: overwrite the sealed outcomes, decisions and reasons; the states stay."""
    row = _row(session, case)
    if row is not None:
        erase_ciphertext(row)


def _row_for_update(session: Session, case: Case) -> CaseWorkflow:
    """The case's workflow row, created (in the initial states) on first use."""
    row = _row(session, case)
    if row is None:
        row = CaseWorkflow(case_id=case.id)
        session.add(row)
    return row


# --- facts ---------------------------------------------------------------------------------


def _submission(row: CaseWorkflow | None) -> Submission | None:
    stored = row.submission if row is not None else None
    if not stored:
        return None
    return Submission(
        stored.get("destination_country"),
        stored.get("priority"),
        tuple(stored.get("categories") or ()),
    )


def _own_facts(case: Case, row: CaseWorkflow | None, now: datetime) -> dict[str, Any]:
    """The facts this feature keeps: states, four-eyes ids, sealed outcomes, needs codes."""
    own: dict[str, Any] = {
        "office": case.office_code,
        "now": now,
        "stage": case.stage,
        "resettlement": case.resettlement_stage,
        "specific_needs": frozenset(case.specific_needs or ()),
    }
    if row is None:
        return own
    own.update(
        last_active_stage=row.last_active_stage,
        vetting=row.vetting,
        determination=row.determination,
        handoff_status=row.handoff_status,
        vetting_referred_by=row.vetting_referred_by,
        assessment_authors=frozenset(row.assessment_authors or ()),
        first_instance_decided_by=row.first_instance_decided_by,
        first_instance_outcome=row.first_instance_outcome,
        appeal_outcome=row.appeal_outcome,
        rrf_preparers=frozenset(row.rrf_preparers or ()),
        submission=_submission(row),
        state_decision=row.state_decision,
        best_interests_assessment_done=bool(row.best_interests_assessment),
    )
    return own


def _facts(
    session: Session, case: Case, row: CaseWorkflow | None, now: datetime | None
) -> CaseFacts:
    own = _own_facts(case, row, now or utcnow())
    gathered = facts.gather(session, case)
    clash = _OWN_FACTS & gathered.keys()
    if clash:
        raise RuntimeError(f"workflow facts provided twice: {sorted(clash)}")
    return CaseFacts(**own, **gathered)


def build_facts(session: Session, case: Case, now: datetime | None = None) -> CaseFacts:
    """Everything the engine needs to decide about ``case`` at ``now`` (default: now).

    This feature's states and sealed values, every registered fact source's
    contribution, and the case's decrypted specific-needs codes.
    """
    return _facts(session, case, _row(session, case), now)


# --- allowed transitions -------------------------------------------------------------------


def _may_move_any(case: Case, row: CaseWorkflow | None, actor: Actor) -> bool:
    """Whether any transition from the current states needs a permission ``actor`` holds.

    Without one nothing can be allowed, and the fact sources need not be asked.
    """
    states = {
        Process.CASE_STAGE: case.stage,
        Process.VETTING: row.vetting if row else VettingState.NOT_STARTED,
        Process.DETERMINATION: row.determination if row else DeterminationStage.REGISTERED,
        Process.RESETTLEMENT: case.resettlement_stage,
        Process.HANDOFF: row.handoff_status if row else HandoffStatus.NONE,
    }
    return any(
        actor.has(t.permission) for p, s in states.items() for t in transitions_from(p, str(s))
    )


def _allowed(
    session: Session, principal: Principal, case: Case, row: CaseWorkflow | None
) -> list[dict[str, Any]]:
    if principal.user_id is None:
        return []
    actor = Actor.from_principal(principal)
    if not _may_move_any(case, row, actor):
        return []
    own = _own_facts(case, row, utcnow())
    if row is None or row.handoff_status == HandoffStatus.NONE.value:
        # Hand-off records are made only by the ``request`` transition, which leaves "none"
        # in the same transaction: a case still at "none" has none, so the hand-off
        # source's query (consents, latest hand-off) is not needed to refuse ``request``.
        own["handoff"] = None
    lazy = facts.LazyFacts(own, lambda name: facts.gather_field(session, case, name))
    found = engine.allowed_for_case(cast(CaseFacts, lazy), actor)
    return [engine.transition_ref(t) for t in found]


def allowed_for(session: Session, principal: Principal, case: Case) -> list[dict[str, Any]]:
    """The transitions ``principal`` may take on ``case`` now (``transition_ref`` dicts).

    Only those whose permission they hold and whose guards hold; a device or
    a caller without any workflow permission gets none.
    """
    return _allowed(session, principal, case, _row(session, case))


# --- views ---------------------------------------------------------------------------------


def _visible(principal: Principal, name: str) -> bool:
    return any(principal.has(p) for p in _VISIBLE_WITH[name])


def _states(case: Case, row: CaseWorkflow | None) -> dict[str, Any]:
    return {
        "case_stage": case.stage,
        "vetting": row.vetting if row else VettingState.NOT_STARTED.value,
        "determination": row.determination if row else DeterminationStage.REGISTERED.value,
        "resettlement": case.resettlement_stage,
        "handoff": row.handoff_status if row else HandoffStatus.NONE.value,
    }


def _sealed_values(row: CaseWorkflow | None) -> dict[str, Any]:
    if row is None:
        return dict.fromkeys(_VISIBLE_WITH)
    assessment = row.best_interests_assessment or {}
    reasons = row.reasons or {}
    submission = row.submission
    return {
        "first_instance_outcome": row.first_instance_outcome,
        "appeal_outcome": row.appeal_outcome,
        "state_decision": row.state_decision,
        "submission": None
        if not submission
        else {name: submission.get(name) for name in SUBMISSION_FIELDS},
        "best_interests_assessment": {
            "completed": bool(assessment),
            "completed_on": date.fromisoformat(assessment["completed_on"]) if assessment else None,
            "note": row.best_interests_note,
        },
        "closure_reason": reasons.get(f"{Process.CASE_STAGE.value}.close"),
        "reopen_reason": reasons.get(f"{Process.CASE_STAGE.value}.reopen"),
    }


def workflow_view(principal: Principal, case: Case, row: CaseWorkflow | None) -> dict[str, Any]:
    """The ``CaseWorkflowOut`` of ``case`` for ``principal``: what they may not see is left out."""
    view: dict[str, Any] = {
        "states": _states(case, row),
        "last_active_stage": row.last_active_stage if row else None,
    }
    for name, value in _sealed_values(row).items():
        if _visible(principal, name):
            view[name] = value
    if "best_interests_assessment" in view and view["best_interests_assessment"] is None:
        view["best_interests_assessment"] = {"completed": False, "completed_on": None, "note": None}
    return view


def _returned(view: Mapping[str, Any]) -> list[str]:
    """Names of the sealed workflow values a view carries (for the access log)."""
    names = []
    for name in _VISIBLE_WITH:
        value = view.get(name)
        if name == "best_interests_assessment":  # always present; a value once completed
            value = (value or {}).get("completed") or None
        if value not in (None, [], {}):
            names.append(f"workflow.{name}")
    return names


def contribute_to_case_view(
    session: Session, principal: Principal, case: Case, view: dict[str, Any]
) -> list[str]:
    """Add ``workflow`` and the caller's ``allowed_transitions`` to a case read; return the
    names of the workflow fields it carries, for the read's access-log entry.

    The workflow row came with the case (``load_with_case``; else one query), plus
    the fact sources' queries when a guard of a transition the caller may take reads them.
    """
    loaded, row = loaded_with_case(session, CaseWorkflow, case)
    if not loaded:
        row = _row(session, case)
    view["workflow"] = workflow_view(principal, case, row)
    view["allowed_transitions"] = _allowed(session, principal, case, row)
    return ["workflow.states", *_returned(view["workflow"])]


def _result(
    session: Session, principal: Principal, case: Case, row: CaseWorkflow
) -> dict[str, Any]:
    """A change's answer (``CaseWorkflowResultOut``), recorded as a read of what it returns."""
    view = workflow_view(principal, case, row)
    returned = _returned(view)
    if returned:
        audit.record(AuditAction.CASE_READ, target=case.reference, fields=returned, session=session)
    return {
        "reference": case.reference,
        "version": case.version,
        "workflow": view,
        "allowed_transitions": _allowed(session, principal, case, row),
    }


# --- transitions ---------------------------------------------------------------------------


STALE_OFFER = (
    "The {process} process is in {state}, not in {offered}: read the case again for its "
    "allowed transitions."
)
OTHER_NAME = "From {state}, the transition of {process} to {target} has another name."


def _check_offer(
    process: Process, current: CaseFacts, actor: Actor, request: Mapping[str, Any]
) -> None:
    """An ``allowed_transitions`` entry sent back names the state it was offered from:
    when the case has moved on since, the offer is stale (409, with today's offers)."""
    state = current.state_of(process)
    offered = request.get("from")
    if offered is not None and offered != state:
        detail = STALE_OFFER.format(process=process.value, state=state, offered=offered)
        raise engine.InvalidTransition(
            detail, (), engine.allowed_transitions(process, state, current, actor)
        )


def _refuse_offer(
    process: Process, current: CaseFacts, actor: Actor, request: Mapping[str, Any]
) -> None:
    state = current.state_of(process)
    detail = OTHER_NAME.format(process=process.value, state=state, target=request["to"])
    raise engine.InvalidTransition(
        detail, (), engine.allowed_transitions(process, state, current, actor)
    )


def _choices(request: Mapping[str, Any]) -> dict[str, str]:
    chosen = request.get("choices")
    if chosen is None:
        chosen = {name: request[name] for name in _CHOICE_FIELDS if name in request}
    return {name: str(plain(value)) for name, value in chosen.items()}


def _add(ids: Iterable[str] | None, user_id: str) -> list[str]:
    current = list(ids or [])
    return current if user_id in current else [*current, user_id]


def _remember_reason(row: CaseWorkflow, t: Transition, reason: str) -> None:
    key = f"{t.process.value}.{'close' if t.to_state == 'closed' else 'reopen'}"
    row.reasons = {**(row.reasons or {}), key: reason}


def _apply_case_stage(
    case: Case, row: CaseWorkflow, t: Transition, choices: Mapping[str, str]
) -> list[str]:
    changed = ["stage"]
    if t.from_state in ACTIVE_STAGES and t.to_state not in ACTIVE_STAGES:
        row.last_active_stage = t.from_state
        changed.append("last_active_stage")
    elif t.to_state in ACTIVE_STAGES and t.from_state not in ACTIVE_STAGES:
        row.last_active_stage = None
        changed.append("last_active_stage")
    if "reason" in choices:
        _remember_reason(row, t, choices["reason"])
        changed.append("closure_reason" if t.to_state == Stage.CLOSED else "reopen_reason")
    case.stage = t.to_state
    return changed


def _apply_vetting(row: CaseWorkflow, t: Transition, actor: Actor) -> list[str]:
    row.vetting = t.to_state
    if t.to_state == VettingState.REFERRED_FOR_REVIEW:
        row.vetting_referred_by = actor.user_id
        return ["vetting", "vetting_referred_by"]
    return ["vetting"]


def _apply_determination(
    row: CaseWorkflow, t: Transition, actor: Actor, choices: Mapping[str, str]
) -> list[str]:
    row.determination = t.to_state
    changed = ["determination"]
    if t.name == "draft_assessment":
        row.assessment_authors = _add(row.assessment_authors, actor.user_id)
        changed.append("assessment_authors")
    elif t.to_state == DeterminationStage.DECIDED:
        # A new first-instance decision: an appeal outcome belonged to the previous one.
        row.first_instance_outcome = choices["outcome"]
        row.first_instance_decided_by = actor.user_id
        row.appeal_outcome = None
        changed += ["first_instance_outcome", "first_instance_decided_by", "appeal_outcome"]
    elif t.to_state == DeterminationStage.APPEAL_DECIDED:
        row.appeal_outcome = choices["outcome"]
        changed.append("appeal_outcome")
    elif "reason" in choices:
        _remember_reason(row, t, choices["reason"])
        changed.append("closure_reason" if t.to_state == "closed" else "reopen_reason")
    return changed


# Resettlement steps whose actor becomes a preparer of the submission (four-eyes).
_PREPARING = frozenset({"prepare_rrf", "prepare_resubmission", "submit_for_review"})


def _apply_resettlement(
    case: Case, row: CaseWorkflow, t: Transition, actor: Actor, choices: Mapping[str, str]
) -> list[str]:
    case.resettlement_stage = t.to_state
    changed = ["resettlement_stage"]
    if t.name in _PREPARING:
        row.rrf_preparers = _add(row.rrf_preparers, actor.user_id)
        changed.append("rrf_preparers")
    if "decision" in choices:
        row.state_decision = choices["decision"]
        changed.append("state_decision")
    return changed


def _apply(
    case: Case, row: CaseWorkflow, t: Transition, actor: Actor, choices: Mapping[str, str]
) -> list[str]:
    """Move one process; return the names of what changed."""
    if t.process is Process.CASE_STAGE:
        return _apply_case_stage(case, row, t, choices)
    if t.process is Process.VETTING:
        return _apply_vetting(row, t, actor)
    if t.process is Process.DETERMINATION:
        return _apply_determination(row, t, actor, choices)
    if t.process is Process.RESETTLEMENT:
        return _apply_resettlement(case, row, t, actor, choices)
    row.handoff_status = t.to_state
    return ["handoff_status"]


def _action(t: Transition) -> AuditAction:
    if t.process is Process.CASE_STAGE and t.to_state == Stage.CLOSED:
        return AuditAction.CASE_CLOSE
    if t.process is Process.CASE_STAGE and t.name == "reopen":
        return AuditAction.CASE_REOPEN
    return AuditAction.CASE_TRANSITION


def transition(
    session: Session, principal: Principal, case: Case, request: Mapping[str, Any]
) -> dict[str, Any]:
    """Take the transition ``request`` (``TransitionIn`` data) on ``case`` for ``principal``.

    The caller has loaded the case (locked) and checked ``If-Match``. Raises
    ``TransitionForbidden`` (403), ``InvalidTransition`` (409, naming unmet
    guards and the allowed transitions) or ``ValidationFailed`` (422, a missing
    or unused choice); nothing is written then. Otherwise moves the process
    (and its companion: both or neither), bumps the case's version, runs the
    registered effects, records the step with the names of what changed and
    returns ``CaseWorkflowResultOut`` data.
    """
    actor = Actor.from_principal(principal)
    now = utcnow()
    row = _row_for_update(session, case)
    current = _facts(session, case, row, now)
    process = Process(request["process"])
    choices = _choices(request)
    _check_offer(process, current, actor, request)
    taken = engine.check_transition(
        process, current.state_of(process), str(request["to"]), current, actor, choices
    )
    if request.get("name", taken.name) != taken.name:
        _refuse_offer(process, current, actor, request)
    companion = engine.companion_of(taken, current)
    steps = [taken] if companion is None else [taken, companion]
    changed: list[str] = []
    for step in steps:
        changed += _apply(case, row, step, actor, choices if step is taken else {})
    row.updated_at = now
    case.version += 1
    case.updated_at = now
    for step in steps:
        facts.run_effects(
            facts.TransitionContext(session, case, step, actor, current, request, now)
        )
    audit.record(
        _action(taken), target=case.reference, fields=sorted(set(changed)), session=session
    )
    session.flush()
    return _result(session, principal, case, row)


# --- the submission and the best-interests assessment --------------------------------------


def _changed(
    session: Session, case: Case, row: CaseWorkflow, now: datetime, fields: list[str]
) -> None:
    row.updated_at = now
    case.version += 1
    case.updated_at = now
    audit.record(AuditAction.CASE_UPDATE, target=case.reference, fields=fields, session=session)


def save_submission(
    session: Session, principal: Principal, case: Case, data: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge ``data`` (``SubmissionIn``) into the case's resettlement submission.

    The caller becomes one of its preparers, whom four-eyes keeps from
    recommending it. Raises :class:`SubmissionLocked` unless the case is at
    the resettlement stage and the submission is not yet under review. A
    request that changes nothing changes no version but still makes its
    caller a preparer (they worked on it).
    """
    if case.stage != Stage.RESETTLEMENT or case.resettlement_stage not in SUBMISSION_EDITABLE:
        raise SubmissionLocked(
            "The submission can be drafted only at the resettlement stage, before its review."
        )
    actor = Actor.from_principal(principal)
    row = _row_for_update(session, case)
    stored = dict(row.submission or dict.fromkeys(SUBMISSION_FIELDS))
    stored["categories"] = stored.get("categories") or []
    given = {name: plain(value) for name, value in data.items()}
    names = [f"submission.{n}" for n, v in given.items() if stored.get(n) != v]
    preparers = _add(row.rrf_preparers, actor.user_id)
    if preparers != list(row.rrf_preparers or []):
        row.rrf_preparers = preparers
        names.append("rrf_preparers")
    if names:
        row.submission = {name: given.get(name, stored.get(name)) for name in SUBMISSION_FIELDS}
        _changed(session, case, row, utcnow(), sorted(names))
        session.flush()
    return _result(session, principal, case, row)


def record_best_interests(
    session: Session, principal: Principal, case: Case, data: Mapping[str, Any]
) -> dict[str, Any]:
    """Record the case's best-interests assessment as completed (``BestInterestsIn``).

    The date and the note are sealed; a submission for a child at risk
    (``SC-*``) needs it. Recording again replaces the previous one.
    """
    row = _row_for_update(session, case)
    completed_on: date = data["completed_on"]
    row.best_interests_assessment = {"completed_on": completed_on.isoformat()}
    row.best_interests_note = data.get("note")
    _changed(
        session,
        case,
        row,
        utcnow(),
        ["best_interests_assessment.completed_on", "best_interests_assessment.note"],
    )
    session.flush()
    return _result(session, principal, case, row)
