"""Routes: field offices (``/api/v1/offices``), managed by administrators."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import RAISE

from casework import db
from casework.api import IF_MATCH, Blueprint, problems
from casework.authz.access import requires
from casework.authz.permissions import Permission
from casework.concurrency import etag_for, require_if_match
from casework.offices import service
from casework.offices.models import Office
from casework.offices.schemas import (
    OfficeCreateSchema,
    OfficePageSchema,
    OfficeSchema,
    OfficeUpdateSchema,
)
from casework.pagination import PageArgs

blp = Blueprint("offices", __name__, url_prefix="/api/v1/offices", description="Field offices.")


@blp.route("")
class Offices(MethodView):
    @requires(Permission.OFFICES_READ)
    @blp.arguments(PageArgs, location="query", unknown=RAISE)
    @blp.response(200, OfficePageSchema)
    @problems(blp, 401, 403, 422)
    def get(self, page: dict[str, Any]) -> dict[str, Any]:
        """Offices, by code."""
        items, next_cursor = service.list_offices(db.session(), page["limit"], page["cursor"])
        return {"items": items, "next_cursor": next_cursor}

    @requires(Permission.OFFICES_WRITE)
    @blp.arguments(OfficeCreateSchema)
    @blp.response(201, OfficeSchema)
    @problems(blp, 401, 403, 409, 422)
    def post(self, body: dict[str, Any]) -> tuple[Office, int, dict[str, str]]:
        """Create an office; its code is its permanent identity."""
        office = service.create_office(db.session(), **body)
        return office, 201, {"ETag": etag_for(office.version)}


@blp.route("/<code>")
class OfficeByCode(MethodView):
    @requires(Permission.OFFICES_READ)
    @blp.response(200, OfficeSchema)
    @problems(blp, 401, 403, 404)
    def get(self, code: str) -> tuple[Office, int, dict[str, str]]:
        """One office, with its ETag."""
        office = service.get_office(db.session(), code)
        return office, 200, {"ETag": etag_for(office.version)}

    @requires(Permission.OFFICES_WRITE)
    @blp.arguments(OfficeUpdateSchema)
    @blp.response(200, OfficeSchema)
    @blp.doc(parameters=[IF_MATCH])
    @problems(blp, 401, 403, 404, 412, 422, 428)
    def patch(self, changes: dict[str, Any], code: str) -> tuple[Office, int, dict[str, str]]:
        """Rename, change country, activate or deactivate (its staff's sessions end)."""
        session = db.session()
        office = service.get_office(session, code, for_update=True)
        require_if_match(office.version)
        service.update_office(session, office, changes)
        return office, 200, {"ETag": etag_for(office.version)}
