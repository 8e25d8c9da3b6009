"""Routes of reports and retention: statistics, the retention policy, legal holds."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Response, current_app, request
from flask.views import MethodView
from marshmallow import RAISE

from casework import db
from casework.api import API_PREFIX, ETAG_HEADER, IF_MATCH, Blueprint, NoBody, problems
from casework.authz.access import require_principal, requires
from casework.authz.permissions import Permission
from casework.cases.api import case_etag, case_for_write
from casework.concurrency import etag_for, require_if_match
from casework.errors import NotFound
from casework.reports import retention, service
from casework.reports.models import RetentionPolicy
from casework.reports.schemas import (
    LegalHoldIn,
    LegalHoldOut,
    PolicyIn,
    PolicyOut,
    ReportArgs,
    ReportListOut,
    ReportOut,
)

blp = Blueprint(
    "reports",
    __name__,
    url_prefix=API_PREFIX,
    description="Anonymised statistics (small cells suppressed) and retention.",
)

CSV_MIME = "text/csv"
CSV_SCHEMA = {
    "type": "string",
    "description": (
        "A header row, a row of HXL hashtags, then one row per cell and per total; "
        "a suppressed count is empty with 1 in the `suppressed` column."
    ),
}
REPORT_CONTENT = {
    "application/json": {"schema": {"$ref": "#/components/schemas/ReportOut"}},
    CSV_MIME: {"schema": CSV_SCHEMA},
}


def _wants_csv(fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    best = request.accept_mimetypes.best_match(["application/json", CSV_MIME])
    return best == CSV_MIME


def _csv(result: service.Result) -> Response:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(service.as_rows(result))
    name = result.spec.name.value
    return Response(
        buffer.getvalue(),
        mimetype=CSV_MIME,
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@blp.route("/reports")
class Reports(MethodView):
    @requires(Permission.REPORTS_READ)
    @blp.response(200, ReportListOut)
    @problems(blp, 401, 403)
    def get(self) -> dict[str, Any]:
        """The reports that can be run."""
        return {"items": service.report_names()}


@blp.route("/reports/<name>")
class Report(MethodView):
    @requires(Permission.REPORTS_READ)
    @blp.arguments(ReportArgs, location="query", unknown=RAISE)
    @blp.response(200, ReportOut)
    @blp.doc(responses={"200": {"description": "The report.", "content": REPORT_CONTENT}})
    @problems(blp, 401, 403, 404, 422)
    def get(self, args: dict[str, Any], name: str) -> Any:
        """Run a report: JSON, or CSV with HXL hashtags in its second row
        (``?format=csv`` or ``Accept: text/csv``). Analysts see every office in
        aggregate or one office; supervisors their own office. Counts below k are
        suppressed (docs/reports.md); one ``report.run`` access-log entry per run."""
        try:
            result = service.run_report(
                db.session(),
                require_principal(),
                name,
                args["filters"],
                service.Settings.of_app(),
            )
        except service.UnknownReport:
            raise NotFound("No such report.") from None
        if _wants_csv(args["format"]):
            return _csv(result)
        return service.as_json(result)


# --- retention ------------------------------------------------------------------------------


def _first_proposal() -> dict[str, int]:
    return retention.parse_first_proposal(
        current_app.config["CASEWORK"]["retention_first_proposal"]
    )


def _row(row: RetentionPolicy | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "id": row.id,
        "rules": row.rules,
        "status": row.status,
        "proposed_by": row.proposed_by,
        "proposed_at": row.proposed_at,
        "approved_by": row.approved_by,
        "approved_at": row.approved_at,
    }


def _document() -> tuple[dict[str, Any], int, dict[str, str]]:
    document = retention.policy_document(db.session(), _first_proposal())
    body = {
        "version": document.version,
        "active": _row(document.active),
        "pending": _row(document.pending),
    }
    return body, 200, {"ETag": etag_for(document.version)}


@blp.route("/retention-policy")
class Policy(MethodView):
    @requires(Permission.RETENTION_MANAGE)
    @blp.response(200, PolicyOut, headers=ETAG_HEADER)
    @problems(blp, 401, 403)
    def get(self) -> tuple[dict[str, Any], int, dict[str, str]]:
        """The active retention policy and the pending proposal (version 0: nothing stored;
        the pending proposal is then configuration's)."""
        return _document()

    @requires(Permission.RETENTION_MANAGE)
    @blp.arguments(PolicyIn)
    @blp.doc(parameters=[IF_MATCH])
    @blp.response(200, PolicyOut, headers=ETAG_HEADER)
    @problems(blp, 401, 403, 412, 422, 428)
    def put(self, data: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Propose a retention policy; a second administrator must approve it."""
        session = db.session()
        require_if_match(retention.policy_document(session, _first_proposal()).version)
        retention.propose(session, require_principal(), data["rules"])
        return _document()


@blp.route("/retention-policy/approve")
class PolicyApproval(MethodView):
    @requires(Permission.RETENTION_MANAGE)
    @blp.arguments(NoBody)
    @blp.doc(parameters=[IF_MATCH])
    @blp.response(200, PolicyOut, headers=ETAG_HEADER)
    @problems(blp, 401, 403, 409, 412, 428)
    def post(self, _: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Approve the pending proposal (not its proposer: 409 four-eyes-required). A
        proposal from configuration is adopted instead: a second administrator approves it."""
        session = db.session()
        document = retention.policy_document(session, _first_proposal())
        require_if_match(document.version)
        retention.approve(session, require_principal(), document)
        return _document()


@blp.route("/cases/<case_ref:reference>/legal-hold")
class CaseLegalHold(MethodView):
    @requires(Permission.CASES_HOLD)
    @blp.arguments(LegalHoldIn)
    @blp.doc(parameters=[IF_MATCH])
    @blp.response(200, LegalHoldOut, headers=ETAG_HEADER)
    @problems(blp, 401, 403, 404, 410, 412, 422, 428)
    def put(
        self, data: dict[str, Any], reference: str
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Put the case under legal hold (retention never erases it) or lift the hold;
        ``If-Match`` carries the case's ETag."""
        session, principal, case = case_for_write(reference)
        row = retention.set_legal_hold(session, principal, case, data["hold"], data["reason"])
        body = {
            "reference": case.reference,
            "hold": row.is_held,
            "reason": row.reason,
            "changed_by": row.changed_by,
            "changed_at": row.changed_at,
            "version": case.version,
        }
        return body, 200, case_etag(case)
