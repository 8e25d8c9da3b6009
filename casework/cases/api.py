"""Routes: cases (``/api/v1/cases``) and duplicate alerts (``/api/v1/alerts``).

Each route parses and validates its input, loads the case (404 outside the
caller's office, 410 once erased), checks ``If-Match`` on writes, calls one
service function and dumps the result. Case references are the only personal
link in a URL; searches carry their keys in a POST body.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app
from flask.views import MethodView
from marshmallow import RAISE
from sqlalchemy.orm import Session
from werkzeug.routing import BaseConverter

from casework import db
from casework.api import (
    API_PREFIX,
    ETAG_HEADER,
    IF_MATCH,
    Blueprint,
    NoBody,
    json_answer,
    jsonable,
    problems,
)
from casework.authz.access import Principal, require_principal, requires, route_permission
from casework.authz.permissions import Permission
from casework.cases import duplicates, erasure_requests, queries, service
from casework.cases.models import Case, ErasureRequest
from casework.cases.reference import URL_PATTERN
from casework.cases.schemas import (
    AlertOut,
    AlertPageOut,
    CaseListArgs,
    CaseOut,
    CasePageOut,
    CaseUpdateIn,
    DuplicatesOut,
    ErasureRequestIn,
    ErasureRequestOut,
    ErasureRequestPageOut,
    HistoryPageOut,
    IntakeIn,
    SearchIn,
    SearchOut,
)
from casework.concurrency import etag_for, require_if_match
from casework.pagination import PageArgs, page_size


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

CREATED_HEADERS = {
    **ETAG_HEADER,
    "Location": {"description": "The new case's URL.", "schema": {"type": "string"}},
}
FILTER_NAMES = (
    "stage",
    "resettlement_stage",
    "office",
    "specific_need",
    "nationality_status",
    "birth_registration",
)
# The list's and the search's arguments are loaded by one schema instance each: given the
# class, webargs would build a new instance (fields deep-copied) on every request.
LIST_ARGS = CaseListArgs()
SEARCH_IN = SearchIn()


def case_for(reference: str, **options: Any) -> tuple[Session, Principal, Case]:
    """The request's session and caller, and the case loaded for the permission the route
    declared (:func:`~casework.authz.access.route_permission`); ``options`` are
    :func:`~casework.cases.service.load_case`'s. Refuses 404/410 as it does."""
    session = db.session()
    principal = require_principal()
    case = service.load_case(session, principal, reference, route_permission(), **options)
    return session, principal, case


def case_for_write(reference: str) -> tuple[Session, Principal, Case]:
    """:func:`case_for`, locked for the write, then 428 without ``If-Match`` and 412 when it
    names another version. (A transition reaches cases outside the office too:
    ``load_for_transition``.)
    """
    session, principal, case = case_for(reference, for_update=True)
    require_if_match(case.version)
    return session, principal, case


def case_etag(case: Case) -> dict[str, str]:
    """The ``ETag`` header of an answer about ``case``."""
    return {"ETag": etag_for(case.version)}


@blp.route("")
class Cases(MethodView):
    @requires(Permission.CASES_READ)
    @blp.arguments(LIST_ARGS, location="query", unknown=RAISE)
    @blp.response(200, CasePageOut)
    @problems(blp, 401, 403, 422)
    def get(self, args: dict[str, Any]) -> Response:
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
        # Summaries are JSON already and exactly CaseSummaryOut: no per-item schema dump.
        return json_answer({"items": items, "next_cursor": next_cursor})

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
    @blp.arguments(SEARCH_IN)
    @blp.response(200, SearchOut)
    @problems(blp, 401, 403, 422)
    @db.reads_only
    def post(self, query: dict[str, Any]) -> Response:
        """Exact search in your office by document number, or by full name and birth year."""
        return json_answer({"items": queries.search(db.session(), require_principal(), query)})


@blp.route("/<case_ref:reference>")
class CaseByReference(MethodView):
    @requires(Permission.CASES_READ)
    @blp.response(200, CaseOut, headers=ETAG_HEADER)
    @problems(blp, 401, 403, 404, 410)
    def get(self, reference: str) -> tuple[Response, int, dict[str, str]]:
        """The whole case, decrypted, with its workflow and the transitions you may take now;
        recorded as case.read with the fields returned."""
        session, principal, case = case_for(reference, for_read=True)
        # Members from the feed's sealed view of this version when there is one (JSON-ready).
        view = service.read_case(session, case, principal, json_ready=True)
        # Built as CaseOut dumps it (tests compare the two), without the dump's per-field work.
        return json_answer(jsonable(view)), 200, case_etag(case)

    @requires(Permission.CASES_WRITE)
    @blp.arguments(CaseUpdateIn)
    @blp.response(200, CaseOut, headers=ETAG_HEADER)
    @blp.doc(parameters=[IF_MATCH])
    @problems(blp, 401, 403, 404, 410, 412, 422, 428)
    def patch(
        self, changes: dict[str, Any], reference: str
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Change needs codes and members (add, change, remove) as one write."""
        session, _, case = case_for_write(reference)
        view = service.change_case(session, case, changes)
        return view, 200, case_etag(case)


@blp.route("/<case_ref:reference>/history")
class CaseHistory(MethodView):
    @requires(Permission.CASES_HISTORY)
    @blp.arguments(PageArgs, location="query", unknown=RAISE)
    @blp.response(200, HistoryPageOut)
    @problems(blp, 401, 403, 404, 422)
    def get(self, page: dict[str, Any], reference: str) -> dict[str, Any]:
        """Who changed which fields and when (names, never values); kept after erasure."""
        session, _, case = case_for(reference, allow_erased=True)
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
        session, principal, case = case_for(reference)
        return {"possible_duplicates": duplicates.check_duplicates(session, principal, case)}


@blp.route("/<case_ref:reference>/erasure-requests")
class CaseErasureRequests(MethodView):
    @requires(Permission.CASES_ERASE)
    @blp.arguments(ErasureRequestIn)
    @blp.response(201, ErasureRequestOut, headers=ETAG_HEADER)
    @problems(blp, 401, 403, 404, 410, 422)
    def post(
        self, body: dict[str, Any], reference: str
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Ask for the case to be erased; another supervisor of your office must approve.

        Erasure is never one person's act: ``DELETE`` on the case answers 405.
        The reason is sealed under the case's key and destroyed with the case.
        """
        session, principal, case = case_for(reference)
        view = erasure_requests.request_erasure(session, principal, case, body["reason"])
        return view, 201, {"ETag": etag_for(view["version"])}


erasure_blp = Blueprint(
    "erasure_requests",
    __name__,
    url_prefix=f"{API_PREFIX}/erasure-requests",
    description="Erasure of a case: one supervisor requests, another approves.",
)
ERASURE_PROBLEMS = {
    409: "The requester cannot decide (`four-eyes-required`), or the request is closed: "
    "decided, cancelled or expired (`request-closed`).",
}


def request_for(
    request_id: uuid.UUID, *, for_update: bool = False
) -> tuple[Session, Principal, ErasureRequest, Case]:
    """The request's session and caller, the request and its case (404 outside the office)."""
    session = db.session()
    principal = require_principal()
    request, case = erasure_requests.load_request(
        session, principal, request_id, for_update=for_update
    )
    return session, principal, request, case


@erasure_blp.route("")
class ErasureRequests(MethodView):
    @requires(Permission.CASES_ERASE)
    @erasure_blp.arguments(PageArgs, location="query", unknown=RAISE)
    @erasure_blp.response(200, ErasureRequestPageOut)
    @problems(erasure_blp, 401, 403, 422)
    def get(self, page: dict[str, Any]) -> dict[str, Any]:
        """Erasure requests of your office (reasons are shown one request at a time)."""
        items, next_cursor = erasure_requests.list_requests(
            db.session(), require_principal(), limit=page_size(page["limit"]), cursor=page["cursor"]
        )
        return {"items": items, "next_cursor": next_cursor}


@erasure_blp.route("/<uuid:request_id>")
class ErasureRequestById(MethodView):
    @requires(Permission.CASES_ERASE)
    @erasure_blp.response(200, ErasureRequestOut, headers=ETAG_HEADER)
    @problems(erasure_blp, 401, 403, 404)
    def get(self, request_id: uuid.UUID) -> tuple[dict[str, Any], int, dict[str, str]]:
        """One request with its reason (recorded as erasure.read)."""
        session, _, request, case = request_for(request_id)
        view = erasure_requests.read_request(session, request, case)
        return view, 200, {"ETag": etag_for(request.version)}


Decision = Callable[[Session, Principal, ErasureRequest, Case], dict[str, Any]]


def _decide(request_id: uuid.UUID, decide: Decision) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Load the request locked, 428/412 on ``If-Match``, then approve or reject it."""
    session, principal, request, case = request_for(request_id, for_update=True)
    require_if_match(request.version)
    view = decide(session, principal, request, case)
    return view, 200, {"ETag": etag_for(request.version)}


@erasure_blp.route("/<uuid:request_id>/approve")
class ErasureApproval(MethodView):
    @requires(Permission.CASES_ERASE)
    @erasure_blp.arguments(NoBody, required=False)
    @erasure_blp.response(200, ErasureRequestOut, headers=ETAG_HEADER)
    @erasure_blp.doc(parameters=[IF_MATCH])
    @problems(erasure_blp, 401, 403, 404, 409, 412, 422, 428, descriptions=ERASURE_PROBLEMS)
    def post(
        self, _body: dict[str, Any], request_id: uuid.UUID
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Approve, as a supervisor other than the requester: the case is erased at once
        (crypto-shredded; a tombstone answering 410 remains, its history readable)."""
        return _decide(request_id, erasure_requests.approve)


@erasure_blp.route("/<uuid:request_id>/reject")
class ErasureRejection(MethodView):
    @requires(Permission.CASES_ERASE)
    @erasure_blp.arguments(NoBody, required=False)
    @erasure_blp.response(200, ErasureRequestOut, headers=ETAG_HEADER)
    @erasure_blp.doc(parameters=[IF_MATCH])
    @problems(erasure_blp, 401, 403, 404, 409, 412, 422, 428, descriptions=ERASURE_PROBLEMS)
    def post(
        self, _body: dict[str, Any], request_id: uuid.UUID
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Reject, as a supervisor other than the requester: the case stays."""
        return _decide(request_id, erasure_requests.reject)


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


@alerts_blp.route("/<uuid:alert_id>")
class AlertById(MethodView):
    @requires(Permission.ALERTS_READ)
    @alerts_blp.response(200, AlertOut, headers=ETAG_HEADER)
    @problems(alerts_blp, 401, 403, 404)
    def get(self, alert_id: uuid.UUID) -> tuple[dict[str, Any], int, dict[str, str]]:
        """One duplicate alert, with the ETag a review sends as If-Match."""
        alert = duplicates.read_alert(db.session(), require_principal(), alert_id)
        return alert, 200, {"ETag": etag_for(alert["version"])}
