"""Workflow: the state machines of a case, their guards, facts and consent."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Put the workflow's block into every case read (its row loaded with the case);
    erasure the workflow's sealed values."""
    from casework.cases import erasure
    from casework.cases import service as cases
    from casework.workflow import service
    from casework.workflow.models import CaseWorkflow

    cases.contribute_to_case_view(app, service.contribute_to_case_view)
    cases.load_with_case(app, CaseWorkflow)
    erasure.on_erase(app, service.erase_workflow)
