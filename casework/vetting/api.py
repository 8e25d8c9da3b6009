"""Routes of the vetting feature: interviews, checks, and duplicate-alert reviews.

Concurrency: every write here changes the case, so ``If-Match`` carries the
**case's** ETag (``"v<version>"``, as ``GET /cases/{reference}``, the check
list and every answer here return it) and every write bumps it. Two officers
changing different interviews of one case therefore conflict (412) and re-read:
vetting is small and the decision reads all of it, so one version is simpler
and safer than one per row. Creating an interview needs no ``If-Match``: it
overwrites nothing.

Importing :mod:`casework.vetting.service` registers the vetting facts with the
workflow; this module imports it, and the application imports this module.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView

from casework import db
from casework.api import API_PREFIX, ETAG_HEADER, IF_MATCH, Blueprint, problem_responses
from casework.authz.access import require_principal, requires
from casework.authz.permissions import Permission
from casework.cases.api import case_etag, case_for, case_for_write
from casework.vetting import service
from casework.vetting.schemas import (
    AlertReviewIn,
    AlertReviewOut,
    CheckIn,
    CheckListOut,
    CheckOut,
    InterviewIn,
    InterviewListOut,
    InterviewOut,
    InterviewPatchIn,
)
from casework.workflow.codes import CheckType

blp = Blueprint(
    "vetting",
    __name__,
    url_prefix=f"{API_PREFIX}",
    description="Vetting: interviews, checks and duplicate-alert reviews.",
)

CHECK_PATH = "<any(" + ",".join(c.value for c in CheckType) + "):check>"
_PROBLEMS = {
    401: "Missing, malformed, expired or revoked token.",
    403: "The caller's role does not permit this.",
    404: "No such case (or interview, or alert), or not in the caller's office.",
    409: "Refused by a vetting rule; see type and detail.",
    410: "The case was erased (crypto-shredded); only its history remains.",
    412: "The case has changed since it was read (If-Match).",
    422: "The request is not valid; see errors.",
    428: "If-Match is required.",
}


problems = problem_responses(blp, _PROBLEMS)
"""Document the problem+json answers a view can give."""


@blp.route("/cases/<case_ref:reference>/interviews")
class Interviews(MethodView):
    @requires(Permission.VETTING_CONDUCT)
    @blp.response(200, InterviewListOut, headers=ETAG_HEADER)
    @problems(401, 403, 404, 410)
    def get(self, reference: str) -> tuple[dict[str, Any], int, dict[str, str]]:
        """The case's vetting interviews, decrypted; recorded as case.read."""
        session, _, case = case_for(reference)
        return {"items": service.list_interviews(session, case)}, 200, case_etag(case)

    @requires(Permission.VETTING_CONDUCT)
    @blp.arguments(InterviewIn)
    @blp.response(201, InterviewOut, headers=ETAG_HEADER)
    @problems(401, 403, 404, 409, 410, 422)
    def post(
        self, data: dict[str, Any], reference: str
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Schedule an interview, or record one held (conducted_on); case at stage vetting."""
        session, principal, case = case_for(reference, for_update=True)
        view = service.schedule_interview(session, principal, case, data)
        return view, 201, case_etag(case)


@blp.route("/cases/<case_ref:reference>/interviews/<uuid:interview_id>")
class InterviewById(MethodView):
    @requires(Permission.VETTING_CONDUCT)
    @blp.arguments(InterviewPatchIn)
    @blp.response(200, InterviewOut, headers=ETAG_HEADER)
    @blp.doc(parameters=[IF_MATCH])
    @problems(401, 403, 404, 409, 410, 412, 422, 428)
    def patch(
        self, changes: dict[str, Any], reference: str, interview_id: uuid.UUID
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Change an interview, or record a scheduled one as held (If-Match: the case's ETag)."""
        session, principal, case = case_for_write(reference)
        view = service.change_interview(session, principal, case, interview_id, changes)
        return view, 200, case_etag(case)


@blp.route("/cases/<case_ref:reference>/checks")
class Checks(MethodView):
    @requires(Permission.CASES_READ)
    @blp.response(200, CheckListOut, headers=ETAG_HEADER)
    @problems(401, 403, 404, 410)
    def get(self, reference: str) -> tuple[dict[str, Any], int, dict[str, str]]:
        """The four vetting checks; medical and screening findings need medical:read."""
        session, principal, case = case_for(reference)
        return {"items": service.read_checks(session, principal, case)}, 200, case_etag(case)


@blp.route(f"/cases/<case_ref:reference>/checks/{CHECK_PATH}")
class CheckByType(MethodView):
    @requires(Permission.VETTING_CONDUCT)
    @blp.arguments(CheckIn)
    @blp.response(200, CheckOut, headers=ETAG_HEADER)
    @blp.doc(parameters=[IF_MATCH])
    @problems(401, 403, 404, 409, 410, 412, 422, 428)
    def put(
        self, data: dict[str, Any], reference: str, check: str
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Record a check's status and findings (medical: also medical:read); stage vetting."""
        session, principal, case = case_for_write(reference)
        view = service.record_check(session, principal, case, CheckType(check), data)
        return view, 200, case_etag(case)


@blp.route("/alerts/<uuid:alert_id>/review")
class AlertReview(MethodView):
    @requires(Permission.ALERTS_READ, Permission.VETTING_CONDUCT)
    @blp.arguments(AlertReviewIn)
    @blp.response(201, AlertReviewOut)
    @problems(401, 403, 404, 409, 422)
    def post(self, data: dict[str, Any], alert_id: uuid.UUID) -> tuple[dict[str, Any], int]:
        """Review a duplicate alert from your office's case; the outcome is stored encrypted."""
        review = service.review_alert(db.session(), require_principal(), alert_id, data)
        return review, 201
