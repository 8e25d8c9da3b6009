"""What the permission matrix needs from the workflow: a case whose submission can be drafted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from casework.cases.codes import ResettlementStage, Stage
from casework.cases.models import Case
from tests.cases import matrix as cases_matrix


def case_preparing_submission(world: Any) -> str:
    """A case of ``world.office`` at resettlement, its RRF in preparation; its reference."""
    reference = cases_matrix.new_case(world)
    case = world.session.scalars(select(Case).where(Case.reference == reference)).one()
    case.stage = Stage.RESETTLEMENT.value
    case.resettlement_stage = ResettlementStage.RRF_PREPARATION.value
    world.session.flush()
    return reference
