"""Routes: cases (``/api/v1/cases``) and duplicate alerts (``/api/v1/alerts``).

Each route parses and validates its input, loads the case (404 outside the
caller's office, 410 once erased), checks ``If-Match`` on writes, calls one
service function and dumps the result. Case references are the only personal
link in a URL; searches carry their keys in a POST body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, current_app
from flask.views import MethodView
from marshmallow import RAISE
from sqlalchemy.orm import Session
from werkzeug.routing import BaseConverter

from casework import db
from casework.api import API_PREFIX, Blueprint, problem_responses
from casework.auth.access import Principal, require_principal, requires
from casework.auth.permissions import Permission
from casework.cases import duplicates, queries, service
from casework.cases.models import Case
from casework.cases.reference import URL_PATTERN
from casework.cases.schemas import (
    AlertPageOut,
    CaseListArgs,
    CaseOut,
    CasePageOut,
    CaseUpdateIn,
    DuplicatesOut,
    HistoryPageOut,
    IntakeIn,
    SearchIn,
    SearchOut,
    StrictSchema,
)
from casework.concurrency import etag_for, require_if_match
from casework.pagination import PageArgs, page_size
from casework.workflow import service as workflow


class ReferenceConverter(BaseConverter):
    """``<case_ref:reference>``: a path segment spelled like a case reference.

    Only the shape is checked here; a malformed or unknown reference still
    answers 404 from the view, like a case out of scope.
    """

    regex = URL_PATTERN


def register_converter(app: Flask, api: Any) -> None:
    """Make ``case_ref`` known to the URL map and to the OpenAPI document."""
    app.url_map.converters["case_ref"] = ReferenceConverter
    api.register_converter(
        ReferenceConverter,
        lambda _converter: {"type": "string", "pattern": f"^{URL_PATTERN}$"},
    )


blp = Blueprint(
    "cases", __name__, url_prefix=f"{API_PREFIX}/cases", description="Cases (households)."
)
alerts_blp = Blueprint(
    "alerts", __name__, url_prefix=f"{API_PREFIX}/alerts", description="Duplicate alerts."
)

IF_MATCH = {
    "in": "header",
    "name": "If-Match",
    "required": True,
    "schema": {"type": "string"},
    "description": "The case's ETag as last read; missing: 428, stale: 412.",
}
ETAG_HEADER = {"ETag": {"description": "The case's version.", "schema": {"type": "string"}}}
CREATED_HEADERS = {
    **ETAG_HEADER,
    "Location": {"description": "The new case's URL.", "schema": {"type": "string"}},
}
_PROBLEMS = {
    401: "Missing, malformed, expired or revoked token.",
    403: "The caller's role does not permit this.",
    404: "No such case, or not in the caller's office.",
    410: "The case was erased (crypto-shredded); only its history remains.",
    412: "The case has changed since it was read (If-Match).",
    422: "The request is not valid; see errors.",
    428: "If-Match is required.",
}
FILTER_NAMES = (
    "stage",
    "resettlement_stage",
    "office",
    "specific_need",
    "nationality_status",
    "birth_registration",
)


def problems(bp: Blueprint, *statuses: int) -> Callable[[Any], Any]:
    """Document the problem+json answers a view of ``bp`` can give."""
    return problem_responses(bp, _PROBLEMS)(*statuses)


def case_for_write(reference: str, permission: Permission) -> tuple[Session, Principal, Case]:
    """The request's session and caller, and the case locked for the write they ask for.

    Refuses (404/410) as :func:`~casework.cases.service.load_case` does, then
    428 without ``If-Match`` and 412 when it names another version. (A
    transition reaches cases outside the office too: ``load_for_transition``.)
    """
    session = db.session()
    principal = require_principal()
    case = service.load_case(session, principal, reference, permission, for_update=True)
    require_if_match(case.version)
    return session, principal, case


def case_etag(case: Case) -> dict[str, str]:
    """The ``ETag`` header of an answer about ``case``."""
    return {"ETag": etag_for(case.version)}


class NoBody(StrictSchema):
    """No fields: a body, if sent, must be ``{}``."""


@blp.route("")
class Cases(MethodView):
    @requires(Permission.CASES_READ)
    @blp.arguments(CaseListArgs, location="query", unknown=RAISE)
    @blp.response(200, CasePageOut)
    @problems(blp, 401, 403, 422)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Cases of your office, newest first; filters on encrypted attributes scan in pages."""
        filters = queries.CaseFilters(
            **{name: service.plain(args[name]) for name in FILTER_NAMES if name in args}
        )
        items, next_cursor = queries.list_cases(
            db.session(),
            require_principal(),
            filters,
            limit=page_size(args["limit"]),
            cursor=args["cursor"],
            scan_limit=current_app.config["CASEWORK"]["cases_filter_scan_limit"],
        )
        return {"items": items, "next_cursor": next_cursor}

    @requires(Permission.CASES_CREATE)
    @blp.arguments(IntakeIn)
    @blp.response(201, CaseOut, headers=CREATED_HEADERS)
    @problems(blp, 401, 403, 422)
    def post(self, household: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Register a household; possible duplicates in your office are listed by reference."""
        view = service.register(db.session(), require_principal(), household)
        location = f"{API_PREFIX}/cases/{view['reference']}"
        return view, 201, {"ETag": etag_for(view["version"]), "Location": location}


@blp.route("/search")
class CaseSearch(MethodView):
    @requires(Permission.CASES_SEARCH)
    @blp.arguments(SearchIn)
    @blp.response(200, SearchOut)
    @problems(blp, 401, 403, 422)
    @db.reads_only
    def post(self, query: dict[str, Any]) -> dict[str, Any]:
        """Exact search in your office by document number, or by full name and birth year."""
        return {"items": queries.search(db.session(), require_principal(), query)}


@blp.route("/<case_ref:reference>")
class CaseByReference(MethodView):
    @requires(Permission.CASES_READ)
    @blp.response(200, CaseOut, headers=ETAG_HEADER)
    @problems(blp, 401, 403, 404, 410)
    def get(self, reference: str) -> tuple[dict[str, Any], int, dict[str, str]]:
        """The whole case, decrypted, with its workflow and the transitions you may take now;
        recorded as case.read with the fields returned."""
        session = db.session()
        principal = require_principal()
        case = service.load_case(session, principal, reference, Permission.CASES_READ)
        view = workflow.read_case(session, principal, case)
        return view, 200, case_etag(case)

    @requires(Permission.CASES_WRITE)
    @blp.arguments(CaseUpdateIn)
    @blp.response(200, CaseOut, headers=ETAG_HEADER)
    @blp.doc(parameters=[IF_MATCH])
    @problems(blp, 401, 403, 404, 410, 412, 422, 428)
    def patch(
        self, changes: dict[str, Any], reference: str
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Change needs codes and members (add, change, remove) as one write."""
        session, _, case = case_for_write(reference, Permission.CASES_WRITE)
        view = service.change_case(session, case, changes)
        return view, 200, case_etag(case)

    @requires(Permission.CASES_ERASE)
    @blp.response(204)
    @blp.doc(parameters=[IF_MATCH])
    @problems(blp, 401, 403, 404, 410, 412, 428)
    def delete(self, reference: str) -> None:
        """Erase the case by crypto-shredding; a tombstone answering 410 remains."""
        session, _, case = case_for_write(reference, Permission.CASES_ERASE)
        service.erase_case(session, case)


@blp.route("/<case_ref:reference>/history")
class CaseHistory(MethodView):
    @requires(Permission.CASES_HISTORY)
    @blp.arguments(PageArgs, location="query", unknown=RAISE)
    @blp.response(200, HistoryPageOut)
    @problems(blp, 401, 403, 404, 422)
    def get(self, page: dict[str, Any], reference: str) -> dict[str, Any]:
        """Who changed which fields and when (names, never values); kept after erasure."""
        session = db.session()
        case = service.load_case(
            session, require_principal(), reference, Permission.CASES_HISTORY, allow_erased=True
        )
        items, next_cursor = queries.history(
            session, case, limit=page_size(page["limit"]), cursor=page["cursor"]
        )
        return {"items": items, "next_cursor": next_cursor}


@blp.route("/<case_ref:reference>/duplicates")
class CaseDuplicates(MethodView):
    @requires(Permission.CASES_SEARCH)
    @blp.arguments(NoBody, required=False)
    @blp.response(200, DuplicatesOut)
    @problems(blp, 401, 403, 404, 410, 422)
    def post(self, _body: dict[str, Any], reference: str) -> dict[str, Any]:
        """Look for the same people in every office: yours by reference, others as alerts."""
        session = db.session()
        principal = require_principal()
        case = service.load_case(session, principal, reference, Permission.CASES_SEARCH)
        return {"possible_duplicates": duplicates.check_duplicates(session, principal, case)}


@alerts_blp.route("")
class Alerts(MethodView):
    @requires(Permission.ALERTS_READ)
    @alerts_blp.arguments(PageArgs, location="query", unknown=RAISE)
    @alerts_blp.response(200, AlertPageOut)
    @problems(alerts_blp, 401, 403, 422)
    def get(self, page: dict[str, Any]) -> dict[str, Any]:
        """Duplicate alerts involving your office's cases, newest first."""
        items, next_cursor = duplicates.list_alerts(
            db.session(), require_principal(), limit=page_size(page["limit"]), cursor=page["cursor"]
        )
        return {"items": items, "next_cursor": next_cursor}
