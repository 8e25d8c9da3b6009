"""Reports and retention: anonymised statistics, and erasure on schedule."""

from __future__ import annotations

from flask import Flask

from casework.config import ConfigError


def init_app(app: Flask) -> None:
    """Record the steps the reports count; erase them, and legal holds, with their case."""
    from casework.cases import erasure
    from casework.reports import retention, service
    from casework.workflow import facts
    from casework.workflow.machines import Process

    hooks = facts.hooks(app)
    for process in (Process.VETTING, Process.DETERMINATION, Process.RESETTLEMENT):
        hooks.on_transition(process, None, service.record_event)
    erasure.on_erase(app, service.erase_events)
    erasure.on_erase(app, retention.erase_holds)
    settings = app.config["CASEWORK"]
    if settings["reports_min_cell"] < 1 or settings["reports_rounding"] < 0:
        raise ConfigError("reports_min_cell must be at least 1 and reports_rounding at least 0")
    try:
        retention.parse_first_proposal(settings["retention_first_proposal"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
