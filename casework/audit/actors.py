"""Who an access-log entry names: ``GET /api/v1/audit/actors/{id}`` for ``audit:read``.

Entries name staff and devices by id. The features that own those identities
(accounts in ``auth``, devices in ``sync``) sit above the log, so they register a
resolver here from their ``init_app`` (``on_resolve_actor(app, resolver)``); the
log never imports them. A resolver answers for an id, or for a username (so that
``GET /audit/events?actor=<username>`` finds that person's entries), and returns
only what identifies a member of staff or a device (username, role, office; label,
office): never refugee data. Each look-up is recorded as ``audit.read``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, current_app
from flask.views import MethodView
from marshmallow import Schema, fields
from sqlalchemy.orm import Session

from casework import db
from casework.api import API_PREFIX, Blueprint, problems
from casework.audit import service
from casework.audit.actions import AuditAction
from casework.authz.access import requires
from casework.authz.permissions import Permission
from casework.errors import NotFound

Resolver = Callable[[Session, str], dict[str, Any] | None]
"""(session, id or username) -> the actor's description, or None when not theirs."""

_EXTENSION = "casework.audit.actor_resolvers"

blp = Blueprint(
    "audit_actors",
    __name__,
    url_prefix=f"{API_PREFIX}/audit/actors",
    description="Access log: who an entry's actor or device is (staff and devices only).",
)


def on_resolve_actor(app: Flask, resolver: Resolver) -> None:
    """Register a resolver of actor ids (and names) for ``app``."""
    app.extensions.setdefault(_EXTENSION, []).append(resolver)


def resolve(session: Session, key: str) -> dict[str, Any] | None:
    """The first registered resolver's answer for ``key`` (an id or a username)."""
    for resolver in current_app.extensions.get(_EXTENSION, []):
        found = resolver(session, key)
        if found is not None:
            return found
    return None


def actor_id(session: Session, key: str) -> str:
    """The id to filter entries by: ``key`` itself, unless it names a known actor by
    username or label (an id never looks like one)."""
    found = resolve(session, key)
    return str(found["id"]) if found is not None else key


class ActorOut(Schema):
    id = fields.String(required=True, metadata={"description": "As the log names it."})
    kind = fields.String(required=True, metadata={"description": "user or device."})
    username = fields.String(metadata={"description": "Users: their sign-in name."})
    label = fields.String(metadata={"description": "Devices: their label."})
    role = fields.String(allow_none=True)
    office = fields.String(allow_none=True, metadata={"description": "Office code."})
    active = fields.Boolean(metadata={"description": "Whether the account or device is active."})


@blp.route("/<string:actor>")
class Actor(MethodView):
    @requires(Permission.AUDIT_READ)
    @blp.response(200, ActorOut)
    @problems(blp, 401, 403, 404, descriptions={404: "No user or device by this id or name."})
    def get(self, actor: str) -> dict[str, Any]:
        """A user (username, role, office) or device (label, office) by id or username;
        recorded as ``audit.read`` naming the actor looked up."""
        session = db.session()
        found = resolve(session, actor)
        if found is None:
            raise NotFound("No user or device by this id or name.")
        service.record(AuditAction.AUDIT_READ, target=f"actor:{found['id']}", fields=["actor"])
        return found
