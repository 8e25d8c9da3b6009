"""Routes of the workflow: the published state machines, transitions, the resettlement
submission and the best-interests assessment of a case.

Every change of a case takes ``If-Match`` (428 without, 412 stale) and answers
the case's workflow with the new ETag.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from casework import db
from casework.api import API_PREFIX, ETAG_HEADER, IF_MATCH, Blueprint, problems
from casework.authz.access import require_principal, requires
from casework.authz.permissions import Permission
from casework.cases.api import case_for_write
from casework.concurrency import etag_for, require_if_match
from casework.errors import PROBLEM_MIME
from casework.workflow import engine, service
from casework.workflow.schemas import (
    BestInterestsIn,
    CaseWorkflowResultOut,
    InvalidTransitionProblem,
    SubmissionIn,
    TransitionIn,
    WorkflowOut,
)

blp = Blueprint(
    "workflow",
    __name__,
    url_prefix=f"{API_PREFIX}",
    description="Workflow: state machines, transitions, resettlement submission.",
)

Answer = tuple[dict[str, Any], int, dict[str, str]]


def _answer(result: dict[str, Any]) -> Answer:
    return result, 200, {"ETag": etag_for(result["version"])}


@blp.route("/workflow")
class Workflow(MethodView):
    @requires(Permission.WORKFLOW_READ)
    @blp.response(200, WorkflowOut)
    @problems(blp, 401, 403)
    def get(self) -> dict[str, Any]:
        """Every process: states, transitions with permission, guards and four-eyes, and guards."""
        return engine.describe_workflow()


@blp.route("/cases/<case_ref:reference>/transitions")
class Transitions(MethodView):
    @requires(Permission.CASES_READ)
    @blp.arguments(TransitionIn)
    @blp.response(200, CaseWorkflowResultOut, headers=ETAG_HEADER)
    @blp.alt_response(
        409,
        schema=InvalidTransitionProblem,
        content_type=PROBLEM_MIME,
        description="The transition does not exist from here or a guard does not hold.",
    )
    @blp.doc(parameters=[IF_MATCH])
    @problems(blp, 401, 403, 404, 410, 412, 422, 428)
    def post(self, request: dict[str, Any], reference: str) -> Answer:
        """Move one process of the case; 403 without the transition's permission."""
        session = db.session()
        principal = require_principal()
        case = service.load_for_transition(session, principal, reference)
        require_if_match(case.version)
        return _answer(service.transition(session, principal, case, request))


@blp.route("/cases/<case_ref:reference>/resettlement/submission")
class ResettlementSubmission(MethodView):
    @requires(Permission.RESETTLEMENT_PREPARE)
    @blp.arguments(SubmissionIn)
    @blp.response(200, CaseWorkflowResultOut, headers=ETAG_HEADER)
    @blp.alt_response(
        409,
        schema="Problem",
        content_type=PROBLEM_MIME,
        description="The submission is under review or submitted, or the case is elsewhere.",
    )
    @blp.doc(parameters=[IF_MATCH])
    @problems(blp, 401, 403, 404, 410, 412, 422, 428)
    def put(self, data: dict[str, Any], reference: str) -> Answer:
        """Draft the submission (destination, priority, categories); you become a preparer."""
        session, principal, case = case_for_write(reference)
        return _answer(service.save_submission(session, principal, case, data))


@blp.route("/cases/<case_ref:reference>/best-interests-assessment")
class BestInterestsAssessment(MethodView):
    @requires(Permission.CASES_WRITE)
    @blp.arguments(BestInterestsIn)
    @blp.response(200, CaseWorkflowResultOut, headers=ETAG_HEADER)
    @blp.doc(parameters=[IF_MATCH])
    @problems(blp, 401, 403, 404, 410, 412, 422, 428)
    def put(self, data: dict[str, Any], reference: str) -> Answer:
        """Record the completed best-interests assessment of a child at risk (note sealed)."""
        session, principal, case = case_for_write(reference)
        return _answer(service.record_best_interests(session, principal, case, data))
