"""Routes: consent records and hand-offs of a case, hand-off listing, partners.

Thin routes: parse, load the case (404 outside the office, 410 once erased),
check ``If-Match`` on writes, call one service function, dump. Importing this
module registers the hand-off feature with the workflow (see ``service``).
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response
from flask.views import MethodView
from marshmallow import RAISE

from casework import db
from casework.api import API_PREFIX, ETAG_HEADER, IF_MATCH, Blueprint, NoBody, problems
from casework.authz.access import require_principal, requires
from casework.authz.permissions import Permission
from casework.cases.api import case_etag, case_for, case_for_write
from casework.errors import PROBLEM_MIME
from casework.handoff import service
from casework.handoff.schemas import (
    ConsentIn,
    ConsentListOut,
    ConsentOut,
    HandoffIn,
    HandoffListArgs,
    HandoffOut,
    HandoffPageOut,
    PartnerCreateIn,
    PartnerOut,
    PartnerPageOut,
)
from casework.pagination import PageArgs, page_size

blp = Blueprint(
    "handoff",
    __name__,
    url_prefix=f"{API_PREFIX}",
    description="Consent records, partner organisations and hand-offs.",
)

CASE = "/cases/<case_ref:reference>"


def _conflict(description: str) -> Any:
    return blp.alt_response(
        409, schema="Problem", content_type=PROBLEM_MIME, description=description
    )


# --- consent ------------------------------------------------------------------------------


@blp.route(f"{CASE}/consents")
class Consents(MethodView):
    @requires(Permission.CASES_READ)
    @blp.response(200, ConsentListOut, headers=ETAG_HEADER)
    @problems(blp, 401, 403, 404, 410)
    def get(self, reference: str) -> tuple[dict[str, Any], int, dict[str, str]]:
        """The case's consent records, decrypted; recorded as a read of them."""
        session, _, case = case_for(reference)
        items = service.list_consents(session, case)
        return {"items": items}, 200, case_etag(case)

    @requires(Permission.CONSENT_RECORD)
    @blp.arguments(ConsentIn)
    @blp.response(201, ConsentOut, headers=ETAG_HEADER)
    @blp.doc(parameters=[IF_MATCH])
    @problems(blp, 401, 403, 404, 410, 412, 422, 428)
    def post(
        self, data: dict[str, Any], reference: str
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Record a consent given by a member of the case (sealed under the case key)."""
        session, principal, case = case_for_write(reference)
        row = service.record_consent(session, principal, case, data)
        return service.consent_view(row), 201, case_etag(case)


@blp.route(f"{CASE}/consents/<uuid:consent_id>/withdraw")
class ConsentWithdrawal(MethodView):
    @requires(Permission.CONSENT_RECORD)
    @blp.arguments(NoBody, required=False)
    @blp.response(200, ConsentOut, headers=ETAG_HEADER)
    @blp.doc(parameters=[IF_MATCH])
    @problems(blp, 401, 403, 404, 410, 412, 422, 428)
    @_conflict("The consent is already withdrawn.")
    def post(
        self, _body: dict[str, Any], reference: str, consent_id: uuid.UUID
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Withdraw a consent: it stops counting at once, for every transition."""
        session, principal, case = case_for_write(reference)
        row = service.withdraw_consent(session, principal, case, consent_id)
        return service.consent_view(row), 200, case_etag(case)


# --- hand-offs ----------------------------------------------------------------------------


@blp.route(f"{CASE}/handoffs")
class CaseHandoffs(MethodView):
    @requires(Permission.HANDOFF_REQUEST)
    @blp.arguments(HandoffIn)
    @blp.response(201, HandoffOut, headers=ETAG_HEADER)
    @blp.doc(parameters=[IF_MATCH])
    @problems(blp, 401, 403, 404, 410, 412, 422, 428)
    @_conflict("The request transition is not allowed now (invalid-transition).")
    def post(
        self, data: dict[str, Any], reference: str
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Ask to hand the case to another office or a partner; a supervisor approves it."""
        session, principal, case = case_for_write(reference)
        row = service.request_handoff(session, principal, case, data)
        return service.handoff_view(row), 201, case_etag(case)


@blp.route(f"{CASE}/handoffs/<uuid:handoff_id>/package")
class HandoffPackage(MethodView):
    @requires(Permission.HANDOFF_APPROVE)
    @blp.response(
        200,
        {"type": "string", "format": "binary"},
        content_type="application/octet-stream",
        description="The partner package: sealed to the partner, signed by this deployment.",
    )
    @problems(blp, 401, 403, 404, 410)
    def get(self, reference: str, handoff_id: uuid.UUID) -> Response:
        """Download the package of a hand-off sent to a partner, once; then it is deleted."""
        session, principal, case = case_for(reference)
        blob = service.take_package(session, principal, case, handoff_id)
        return Response(
            blob,
            200,
            mimetype="application/octet-stream",
            headers={
                "Content-Disposition": f'attachment; filename="{handoff_id}.cwpp"',
                "Cache-Control": "no-store",
            },
        )


@blp.route("/handoffs")
class Handoffs(MethodView):
    @requires(Permission.CASES_READ)
    @blp.arguments(HandoffListArgs, location="query", unknown=RAISE)
    @blp.response(200, HandoffPageOut)
    @problems(blp, 401, 403, 422)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Hand-offs from and to your office, newest first: references, offices, statuses."""
        rows, next_cursor = service.list_handoffs(
            db.session(), require_principal(), limit=page_size(args["limit"]), cursor=args["cursor"]
        )
        return {"items": [service.handoff_view(r) for r in rows], "next_cursor": next_cursor}


# --- partners -----------------------------------------------------------------------------


@blp.route("/partners")
class Partners(MethodView):
    @requires(Permission.PARTNERS_MANAGE)
    @blp.arguments(PageArgs, location="query", unknown=RAISE)
    @blp.response(200, PartnerPageOut)
    @problems(blp, 401, 403, 422)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Registered partner organisations, by code, with their key fingerprints."""
        rows, next_cursor = service.list_partners(
            db.session(), limit=page_size(args["limit"]), cursor=args["cursor"]
        )
        return {"items": [service.partner_view(p) for p in rows], "next_cursor": next_cursor}

    @requires(Permission.PARTNERS_MANAGE)
    @blp.arguments(PartnerCreateIn)
    @blp.response(201, PartnerOut)
    @problems(blp, 401, 403, 422)
    @_conflict("A partner with this code is already registered.")
    def post(self, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Register a partner and the X25519 key packages to it are sealed to."""
        partner = service.register_partner(db.session(), require_principal(), data)
        return service.partner_view(partner), 201


@blp.route("/partners/<code>/deactivate")
class PartnerDeactivation(MethodView):
    @requires(Permission.PARTNERS_MANAGE)
    @blp.arguments(NoBody, required=False)
    @blp.response(200, PartnerOut)
    @problems(blp, 401, 403, 404, 422)
    def post(self, _body: dict[str, Any], code: str) -> dict[str, Any]:
        """Stop sending to a partner; nothing new can be sent to it."""
        return service.partner_view(service.deactivate_partner(db.session(), code))
