"""Where the workflow's facts and side effects come from: a small registry.

The engine decides on a :class:`~casework.workflow.guards.CaseFacts`; its
fields are owned by different features (workflow states here, vetting checks
and interviews in ``casework.vetting``, consent records and hand-offs in
``casework.handoff``). Each feature's ``init_app`` registers, on the application
being built (so every command and test that builds the app has all of them):

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

from flask import Flask, current_app
from sqlalchemy.orm import Session

from casework.workflow.guards import Actor, CaseFacts
from casework.workflow.machines import Process, Transition

if TYPE_CHECKING:  # pragma: no cover - typing only
    from casework.authz.access import Principal
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
_EXTENSION_KEY = "casework.workflow_hooks"


@dataclass
class WorkflowHooks:
    """What the features contributed to the workflow of one application."""

    sources: dict[FactSource, frozenset[str]] = field(default_factory=dict)
    effects: list[tuple[Process, str | None, Effect]] = field(default_factory=list)
    scope_extensions: list[ScopeExtension] = field(default_factory=list)

    def fact_source(self, source: FactSource, *provides: str) -> None:
        """Register ``source`` of the ``CaseFacts`` fields named ``provides``.

        Declaring the fields lets a guard's first read of one of them ask only
        the source that has it (:class:`LazyFacts`). Registering twice is harmless.
        """
        fields_ = frozenset(provides)
        unknown = fields_ - _FACT_FIELDS
        if not fields_ or unknown:
            raise ValueError(f"not CaseFacts fields: {sorted(unknown)}")
        for other, claimed in self.sources.items():
            if other is not source and claimed & fields_:
                raise ValueError(f"workflow facts provided twice: {sorted(claimed & fields_)}")
        self.sources[source] = fields_

    def on_transition(self, process: Process, to_state: str | None, effect: Effect) -> None:
        """Register ``effect`` for transitions of ``process`` (into ``to_state`` when given)."""
        entry = (process, to_state, effect)
        if entry not in self.effects:
            self.effects.append(entry)

    def scope_extension(self, extension: ScopeExtension) -> None:
        """Register a way for a case outside the caller's office to be reachable by them."""
        if extension not in self.scope_extensions:
            self.scope_extensions.append(extension)

    def provided(self) -> frozenset[str]:
        """Every field some registered source provides."""
        return frozenset().union(*self.sources.values())


def hooks(app: Flask | None = None) -> WorkflowHooks:
    """The workflow hooks of ``app`` (default: the current application)."""
    target = app if app is not None else current_app
    registry: WorkflowHooks = target.extensions.setdefault(_EXTENSION_KEY, WorkflowHooks())
    return registry


def _ask(source: FactSource, session: Session, case: Case) -> Mapping[str, Any]:
    values = source(session, case)
    if values.keys() - hooks().sources[source]:  # a declared field left out keeps its default
        raise RuntimeError(f"fact source {source.__name__} provided fields it did not declare")
    return values


def gather(session: Session, case: Case) -> dict[str, Any]:
    """Every registered source's facts for ``case``, merged."""
    merged: dict[str, Any] = {}
    for source in hooks().sources:
        merged.update(_ask(source, session, case))
    return merged


def gather_field(session: Session, case: Case, name: str) -> Mapping[str, Any]:
    """The facts of the one source providing field ``name`` ({} when none does)."""
    for source, provides in hooks().sources.items():
        if name in provides:
            return _ask(source, session, case)
    return {}


def provided() -> frozenset[str]:
    """Every field some registered source of the current application provides."""
    return hooks().provided()


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

    # ``__dict__``: a field once resolved is kept there, so later reads of it are plain
    # attribute reads (a case read's guards read the states some twenty times).
    __slots__ = ("__dict__", "_asked", "_facts", "_fetch", "_fetched", "_own")

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
            fresh = {key: value for key, value in values.items() if key not in self._own}
            if fresh:  # a field already known (the caller settled it) keeps its value
                self._fetched.update(fresh)
                self._facts = CaseFacts(**self._own, **self._fetched)
        # Settled for good: a field's source is asked once and sources never overlap.
        value = self.__dict__[name] = getattr(self._facts, name)
        return value


def run_effects(context: TransitionContext) -> None:
    """Run the effects registered for this transition, in registration order."""
    transition = context.transition
    for process, to_state, effect in hooks().effects:
        if process == transition.process and to_state in (None, transition.to_state):
            effect(context)


def extended_scope(session: Session, principal: Principal, reference: str) -> Case | None:
    """The case, when some extension lets ``principal`` reach it outside their office."""
    for extension in hooks().scope_extensions:
        case = extension(session, principal, reference)
        if case is not None:
            return case
    return None
