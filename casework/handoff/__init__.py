"""Hand-off: a case to another office or a partner organisation, with consent and packages."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Give the workflow hand-off's facts, effects and scope; erasure its rows."""
    from casework.cases import erasure
    from casework.handoff import service
    from casework.workflow import facts
    from casework.workflow.machines import Process

    hooks = facts.hooks(app)
    hooks.fact_source(service.handoff_facts, *service.HANDOFF_FACTS)
    for to_state, effect in service.TRANSITION_EFFECTS:
        hooks.on_transition(Process.HANDOFF, to_state, effect)
    hooks.scope_extension(service.receiving_office_scope)
    erasure.on_erase(app, service.erase_handoff_data)
