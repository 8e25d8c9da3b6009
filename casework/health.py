"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from marshmallow import Schema, fields
from sqlalchemy import text

from casework import db, migrate
from casework.api import Blueprint
from casework.authz.access import public
from casework.errors import PROBLEM_MIME, ServiceUnavailable
from casework.security.app import current_keyring

blp = Blueprint("health", __name__, description="Process and database health.")


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})


@blp.route("/healthz")
class Liveness(MethodView):
    @public
    @blp.response(200, HealthSchema)
    def get(self) -> dict[str, str]:
        """The process is alive (no database access)."""
        return {"status": "ok"}


@blp.route("/readyz")
class Readiness(MethodView):
    @public
    @blp.response(200, HealthSchema)
    @blp.alt_response(
        503,
        schema="Problem",
        content_type=PROBLEM_MIME,
        description="Database unreachable, not migrated, or keyring missing.",
    )
    def get(self) -> dict[str, str]:
        """The database answers and its schema is at the migration head.

        Reads on a connection of its own that takes no write lock, so a probe
        never queues behind writers (a long key-rotation batch, say) and a
        load balancer does not take a busy but healthy instance out of service.
        """
        try:
            engine = db.get_db().engine
            with engine.connect().execution_options(**{db.READ_ONLY: True}) as connection:
                connection.execute(text("SELECT 1"))
                at_head = migrate.is_at_head(connection)
        except Exception:
            current_app.logger.warning("readiness: database unreachable")
            raise ServiceUnavailable("The database is unreachable.") from None
        if not at_head:
            raise ServiceUnavailable("The database schema is not at the migration head.")
        current_keyring()  # 503 when the keyring is missing
        return {"status": "ready"}
