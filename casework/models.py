"""Import every feature's models so ``Base.metadata`` is complete.

Alembic's environment and the schema-drift test call :func:`import_all_models`;
a feature that adds models adds its module here.
"""

from __future__ import annotations

import importlib

MODEL_MODULES: tuple[str, ...] = (
    "casework.audit.models",
    "casework.offices.models",
    "casework.security.models",
    "casework.auth.models",
    "casework.cases.models",
    "casework.workflow.models",
    "casework.vetting.models",
    "casework.handoff.models",
    "casework.sync.models",
    "casework.reports.models",
)


def import_all_models() -> None:
    for name in MODEL_MODULES:
        importlib.import_module(name)
