"""The floors hold: imports point down only, and every hook is registered by ``create_app``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from flask import Flask

from casework.audit import service as audit_service
from casework.auth import sessions
from casework.cases import erasure
from casework.cases import service as cases_service
from casework.handoff import service as handoff_service
from casework.offices import service as offices_service
from casework.reports import retention as reports_retention
from casework.reports import service as reports_service
from casework.sync import erasure as sync_erasure
from casework.vetting import service as vetting_service
from casework.workflow import facts
from casework.workflow import service as workflow_service
from casework.workflow.machines import Process

ROOT = Path(__file__).resolve().parent.parent
# The reports record the month of each step they count in these processes.
REPORTED_PROCESSES = (Process.VETTING, Process.DETERMINATION, Process.RESETTLEMENT)


def test_no_package_imports_one_above_it_and_none_import_each_other() -> None:
    """import-linter's layers contract in pyproject.toml; its report is the failure message."""
    result = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_create_app_registers_every_hook(app: Flask) -> None:
    assert erasure.registered_hooks(app) == [
        workflow_service.erase_workflow,
        vetting_service.erase_vetting,
        handoff_service.erase_handoff_data,
        sync_erasure.erase_sync_data,
        reports_service.erase_events,
        reports_retention.erase_holds,
    ]
    hooks = facts.hooks(app)
    assert set(hooks.sources) == {vetting_service.vetting_facts, handoff_service.handoff_facts}
    assert hooks.scope_extensions == [handoff_service.receiving_office_scope]
    assert {(process, state) for process, state, _ in hooks.effects} == {
        (Process.HANDOFF, state) for state, _ in handoff_service.TRANSITION_EFFECTS
    } | {(process, None) for process in REPORTED_PROCESSES}
    assert audit_service.record_refusal in app.extensions["casework.denial_hooks"]
    deactivation = app.extensions["casework.office_deactivation_hooks"]
    assert sessions.revoke_office_tokens in deactivation
    assert offices_service.on_deactivate is not None
    contributors = app.extensions["casework.case_view_contributors"]
    assert contributors == [workflow_service.contribute_to_case_view]
    assert cases_service.read_case is not None


_FRESH = """
import json, sys
from casework import create_app
from casework.cases.erasure import registered_hooks
from casework.workflow.facts import hooks
app = create_app(json.loads(sys.argv[1]))
print(json.dumps({
    "erasure": [h.__qualname__ for h in registered_hooks(app)],
    "sources": sorted(s.__qualname__ for s in hooks(app).sources),
    "scope": [s.__qualname__ for s in hooks(app).scope_extensions],
    "effects": len(hooks(app).effects),
    "denial": len(app.extensions.get("casework.denial_hooks", [])),
}))
"""


def test_a_fresh_process_gets_every_hook_without_importing_the_features(
    app_config: dict[str, Any],
) -> None:
    """The way the CLI builds the app: nothing imported beforehand, every hook there."""
    result = subprocess.run(
        [sys.executable, "-c", _FRESH, json.dumps(app_config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == {
        "erasure": [
            "erase_workflow",
            "erase_vetting",
            "erase_handoff_data",
            "erase_sync_data",
            "erase_events",
            "erase_holds",
        ],
        "sources": ["handoff_facts", "vetting_facts"],
        "scope": ["receiving_office_scope"],
        "effects": len(handoff_service.TRANSITION_EFFECTS) + len(REPORTED_PROCESSES),
        "denial": 1,
    }
