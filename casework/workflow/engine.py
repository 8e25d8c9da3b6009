"""The workflow engine: may this actor move this process from here to there, given the facts?

Pure functions over the tables of :mod:`casework.workflow.machines` and the
guards of :mod:`casework.workflow.guards`; no database, no request. A refusal
is raised, never returned:

* no such row in the table, or a guard that does not hold: :class:`InvalidTransition`
  (409, ``invalid-transition``), naming the unmet guards and the transitions the
  actor may take instead, so a client can show the way forward;
* the actor's role lacks the row's permission: :class:`TransitionForbidden` (403),
  checked before any guard so that a caller without the permission learns
  nothing about the case's facts;
* the request lacks the reason or outcome the row needs: ``ValidationFailed`` (422).

A step may move two processes at once (see ``machines.COMPANIONS``): the
companion row is checked against the same facts, and a transition is allowed
only when its companion is too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from casework.errors import Conflict, Forbidden, ValidationFailed
from casework.workflow.guards import GUARDS, Actor, CaseFacts, unmet
from casework.workflow.machines import (
    COMPANIONS,
    INITIAL_STATES,
    STATES,
    TABLES,
    FourEyes,
    Process,
    Transition,
    find_transition,
    transitions_from,
)

UNKNOWN_TRANSITION = "The {process} process has no transition from {source} to {target}."
UNKNOWN_STATE = "The {process} process has no such state."
REFUSED = "The transition {name} is not allowed now: {reasons}"
NOT_PERMITTED = "Your role does not permit this transition."
CHOICE_REQUIRED = "Required by this transition."
CHOICE_UNUSED = "Not used by this transition."
CHOICE_INVALID = "Must be one of: {values}."


def transition_ref(transition: Transition) -> dict[str, Any]:
    """A transition as clients see it among the allowed ones (no guards, no permission)."""
    choice = transition.choice
    return {
        "process": transition.process.value,
        "name": str(transition.name),
        "from": transition.from_state,
        "to": transition.to_state,
        "choice": None
        if choice is None
        else {"field": choice.field, "values": list(choice.values)},
    }


class InvalidTransition(Conflict):
    """409: the transition does not exist from this state, or a guard does not hold.

    ``unmet_guards`` and ``allowed_transitions`` become extension members of
    the problem document; both name rules and states, never case data.
    """

    slug, title = "invalid-transition", "Transition not allowed"

    def __init__(self, detail: str, unmet_guards: Sequence[str], allowed: Sequence[Transition]):
        self.unmet_guards = tuple(unmet_guards)
        self.allowed = tuple(allowed)
        super().__init__(
            detail,
            unmet_guards=list(self.unmet_guards),
            allowed_transitions=[transition_ref(t) for t in self.allowed],
        )


class TransitionForbidden(Forbidden):
    """403: the actor's role lacks the permission the transition needs."""


def _check_state(process: Process, state: str, facts: CaseFacts) -> None:
    # The facts carry every process's state; a caller passing another one has
    # read the case twice or built the facts wrongly: a bug, not a refusal.
    if facts.state_of(process) != state:
        raise ValueError(f"{process.value}: the facts are not in state {state!r}")


def companion_of(transition: Transition, facts: CaseFacts) -> Transition | None:
    """The row that must move with ``transition`` from the facts' current state, or None.

    None also when the companion process cannot move from where it is; the
    row's ``companion_can_move`` guard then refuses the step.
    """
    other = COMPANIONS.get((transition.process, transition.to_state))
    if other is None:
        return None
    process, target = other
    return find_transition(process, facts.state_of(process), target)


def _rows(transition: Transition, facts: CaseFacts) -> list[Transition]:
    companion = companion_of(transition, facts)
    return [transition] if companion is None else [transition, companion]


def _permitted(transition: Transition, facts: CaseFacts, actor: Actor) -> bool:
    # Stops at the first guard that fails (``unmet`` names them all, for a refusal's
    # message): a guard after it then reads no fact, so no fact source is asked for it.
    return all(
        actor.has(row.permission)
        and all(GUARDS[name].check(facts, actor, row) for name in row.guards)
        for row in _rows(transition, facts)
    )


def allowed_transitions(
    process: Process, state: str, facts: CaseFacts, actor: Actor
) -> list[Transition]:
    """The transitions of ``process`` from ``state`` that ``actor`` may take now."""
    _check_state(process, state, facts)
    return [t for t in transitions_from(process, state) if _permitted(t, facts, actor)]


def allowed_for_case(facts: CaseFacts, actor: Actor) -> list[Transition]:
    """Every transition ``actor`` may take on the case now, over all processes."""
    return [
        t
        for process in Process
        for t in allowed_transitions(process, facts.state_of(process), facts, actor)
    ]


def _check_choice(transition: Transition, choices: Mapping[str, str]) -> None:
    errors: dict[str, list[str]] = {}
    wanted = transition.choice
    for name in choices:
        if wanted is None or name != wanted.field:
            errors[name] = [CHOICE_UNUSED]
    if wanted is not None:
        value = choices.get(wanted.field)
        if value is None:
            errors[wanted.field] = [CHOICE_REQUIRED]
        elif value not in wanted.values:
            errors[wanted.field] = [CHOICE_INVALID.format(values=", ".join(wanted.values))]
    if errors:
        raise ValidationFailed(errors={"json": errors})


def check_transition(
    process: Process,
    from_state: str,
    to_state: str,
    facts: CaseFacts,
    actor: Actor,
    choices: Mapping[str, str] | None = None,
) -> Transition:
    """Return the row ``from_state`` -> ``to_state`` when ``actor`` may take it now.

    ``choices`` holds the request's ``reason``/``outcome``/``decision`` members.
    Raises :class:`InvalidTransition`, :class:`TransitionForbidden` or
    ``ValidationFailed`` (see the module docstring), and ValueError when the
    facts are not in ``from_state``.
    """
    _check_state(process, from_state, facts)
    row = find_transition(process, from_state, to_state)
    if row is None:
        known = to_state in {member.value for member in STATES[process]}
        template = UNKNOWN_TRANSITION if known else UNKNOWN_STATE  # never echo unknown input
        detail = template.format(process=process.value, source=from_state, target=to_state)
        raise InvalidTransition(detail, (), allowed_transitions(process, from_state, facts, actor))
    rows = _rows(row, facts)
    if not all(actor.has(r.permission) for r in rows):
        raise TransitionForbidden(NOT_PERMITTED)
    _check_choice(row, choices or {})
    failed = tuple(dict.fromkeys(g for r in rows for g in unmet(r, facts, actor)))
    if failed:
        reasons = " ".join(GUARDS[name].message for name in failed)
        detail = REFUSED.format(name=row.name, reasons=reasons)
        raise InvalidTransition(
            detail, failed, allowed_transitions(process, from_state, facts, actor)
        )
    return row


def describe_workflow() -> dict[str, Any]:
    """The processes, their tables and the guards' meanings: ``GET /api/v1/workflow``."""
    return {
        "processes": [
            {
                "name": process.value,
                "states": [member.value for member in STATES[process]],
                "initial_state": str(INITIAL_STATES[process]),
                "transitions": [_describe(t) for t in TABLES[process]],
            }
            for process in Process
        ],
        "guards": [{"name": g.name, "description": g.message} for g in GUARDS.values()],
    }


def _describe(transition: Transition) -> dict[str, Any]:
    described = transition_ref(transition)
    del described["process"]
    described.update(
        permission=transition.permission.value,
        guards=list(transition.guards),
        four_eyes=[person.value for person in transition.four_eyes],
        scope=transition.scope.value,
    )
    return described


def _check_tables() -> None:
    """Refuse to start with a table naming a guard that does not exist."""
    problems = [
        f"{t.process.value} {t.name}: unknown guard {g!r}"
        for table in TABLES.values()
        for t in table
        for g in t.guards
        if g not in GUARDS
    ]
    problems += [f"four-eyes {p.value} has no guard" for p in FourEyes if p.guard not in GUARDS]
    if problems:
        raise RuntimeError("workflow tables are inconsistent: " + "; ".join(problems))


_check_tables()
