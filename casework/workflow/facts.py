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
from dataclasses import dataclass, field, fields
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

_FACT_FIELDS = frozenset(f.name for f in fields(CaseFacts))
_SOURCES: dict[FactSource, frozenset[str]] = {}  # a source -> the CaseFacts fields it provides
_EFFECTS: list[tuple[Process, str | None, Effect]] = []
_SCOPE_EXTENSIONS: list[ScopeExtension] = []


def fact_source(*provides: str) -> Callable[[FactSource], FactSource]:
    """Register a source of the ``CaseFacts`` fields named ``provides``; a decorator.

    Declaring the fields lets a guard's first read of one of them ask only
    the source that has it (:class:`LazyFacts`). Registering twice is harmless.
    """
    fields_ = frozenset(provides)
    unknown = fields_ - _FACT_FIELDS
    if not fields_ or unknown:
        raise ValueError(f"not CaseFacts fields: {sorted(unknown)}")

    def register(source: FactSource) -> FactSource:
        for other, claimed in _SOURCES.items():
            if other is not source and claimed & fields_:
                raise ValueError(f"workflow facts provided twice: {sorted(claimed & fields_)}")
        _SOURCES[source] = fields_
        return source

    return register


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


def _ask(source: FactSource, session: Session, case: Case) -> Mapping[str, Any]:
    values = source(session, case)
    if values.keys() - _SOURCES[source]:  # a declared field left out keeps its default
        raise RuntimeError(f"fact source {source.__name__} provided fields it did not declare")
    return values


def gather(session: Session, case: Case) -> dict[str, Any]:
    """Every registered source's facts for ``case``, merged."""
    merged: dict[str, Any] = {}
    for source in _SOURCES:
        merged.update(_ask(source, session, case))
    return merged


def gather_field(session: Session, case: Case, name: str) -> Mapping[str, Any]:
    """The facts of the one source providing field ``name`` ({} when none does)."""
    for source, provides in _SOURCES.items():
        if name in provides:
            return _ask(source, session, case)
    return {}


def provided() -> frozenset[str]:
    """Every field some registered source provides."""
    return frozenset().union(*_SOURCES.values())


class LazyFacts:
    """A :class:`CaseFacts` whose fact-source fields are fetched on first use.

    Listing the transitions a caller may take (every case read does) asks the
    guards of each candidate; most read only the workflow's own states, and
    the fact sources cost queries and decryption (five statements and the
    consent records, the largest part of a read). Here a source runs only
    when a guard reads one of its fields, and at most once: ``fetch(name)``
    returns the facts of the source providing ``name``. Only dataclass fields
    and the methods copied below resolve: a method added to ``CaseFacts``
    raises here until it is copied, rather than reading an unfetched default.
    """

    __slots__ = ("_asked", "_facts", "_fetch", "_fetched", "_own")

    state_of = CaseFacts.state_of
    check_status = CaseFacts.check_status
    checks_complete = CaseFacts.checks_complete
    status_recognized = CaseFacts.status_recognized
    child_at_risk = CaseFacts.child_at_risk

    def __init__(self, own: Mapping[str, Any], fetch: Callable[[str], Mapping[str, Any]]) -> None:
        self._own = dict(own)
        self._fetch = fetch
        self._fetched: dict[str, Any] = {}
        self._asked: set[str] = set(self._own)
        self._facts = CaseFacts(**self._own)

    def __getattr__(self, name: str) -> Any:
        if name not in _FACT_FIELDS:
            raise AttributeError(name)
        if name not in self._asked:
            values = self._fetch(name)
            self._asked.update(values.keys() | {name})
            if values:
                self._fetched.update(values)
                self._facts = CaseFacts(**self._own, **self._fetched)
        return getattr(self._facts, name)


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
