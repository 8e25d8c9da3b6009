"""Where the workflow's facts and side effects come from: a small registry.

The engine decides on a :class:`~casework.workflow.guards.CaseFacts`; its
fields are owned by different features (workflow states here, vetting checks
and interviews in ``casework.vetting``, consent records and hand-offs in
``casework.handoff``). Each feature registers, at import:

* a **fact source**: ``(session, case) -> {CaseFacts field: value}``, read
  when the facts of one case are built;
* **effects**: run inside the transaction of a transition, after the states
  have moved, e.g. changing the owning office when a hand-off is accepted.
  An effect that raises aborts the whole transition;
* **scope extensions**: ``(session, principal, reference) -> Case | None``,
  asked when a case is out of the caller's office scope, e.g. an office that a
  hand-off is addressed to may accept it.

Keeping this a registry keeps the dependency one way: features import the
workflow, never the reverse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from casework.workflow.guards import Actor, CaseFacts
from casework.workflow.machines import Process, Transition

if TYPE_CHECKING:  # pragma: no cover - typing only
    from casework.auth.access import Principal
    from casework.cases.models import Case


@dataclass(slots=True)
class TransitionContext:
    """What an effect may look at: the case, the step taken, by whom, with which request."""

    session: Session
    case: Case
    transition: Transition
    actor: Actor
    facts: CaseFacts
    request: Mapping[str, Any]
    now: datetime
    extra: dict[str, Any] = field(default_factory=dict)


FactSource = Callable[[Session, "Case"], Mapping[str, Any]]
Effect = Callable[[TransitionContext], None]
ScopeExtension = Callable[[Session, "Principal", str], "Case | None"]

_SOURCES: list[FactSource] = []
_EFFECTS: list[tuple[Process, str | None, Effect]] = []
_SCOPE_EXTENSIONS: list[ScopeExtension] = []


def fact_source(source: FactSource) -> FactSource:
    """Register ``source``; usable as a decorator. Registering twice is harmless."""
    if source not in _SOURCES:
        _SOURCES.append(source)
    return source


def on_transition(process: Process, to_state: str | None = None) -> Callable[[Effect], Effect]:
    """Register an effect for transitions of ``process`` (into ``to_state`` when given)."""

    def register(effect: Effect) -> Effect:
        entry = (process, to_state, effect)
        if entry not in _EFFECTS:
            _EFFECTS.append(entry)
        return effect

    return register


def scope_extension(extension: ScopeExtension) -> ScopeExtension:
    """Register a way for a case outside the caller's office to be reachable by them."""
    if extension not in _SCOPE_EXTENSIONS:
        _SCOPE_EXTENSIONS.append(extension)
    return extension


def gather(session: Session, case: Case) -> dict[str, Any]:
    """Every registered source's facts for ``case``, merged; a field claimed twice is a bug."""
    merged: dict[str, Any] = {}
    for source in _SOURCES:
        values = source(session, case)
        clash = merged.keys() & values.keys()
        if clash:
            raise RuntimeError(f"workflow facts provided twice: {sorted(clash)}")
        merged.update(values)
    return merged


def run_effects(context: TransitionContext) -> None:
    """Run the effects registered for this transition, in registration order."""
    transition = context.transition
    for process, to_state, effect in _EFFECTS:
        if process == transition.process and to_state in (None, transition.to_state):
            effect(context)


def extended_scope(session: Session, principal: Principal, reference: str) -> Case | None:
    """The case, when some extension lets ``principal`` reach it outside their office."""
    for extension in _SCOPE_EXTENSIONS:
        case = extension(session, principal, reference)
        if case is not None:
            return case
    return None
