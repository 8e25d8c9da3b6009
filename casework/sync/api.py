"""Routes: devices (``/api/v1/devices``) and sync (``/api/v1/sync``).

Thin: parse, load, check, call one service function, dump. The sync routes
need a request signed by an enrolled device of the caller's office *and* a
token bound to that device (see :mod:`casework.sync.auth` and docs/sync.md).
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app
from flask.views import MethodView
from marshmallow import RAISE
from werkzeug.sansio.response import Response

from casework import db
from casework.api import API_PREFIX, Blueprint, problem_responses
from casework.authz.access import public, require_principal, requires
from casework.authz.permissions import Permission
from casework.concurrency import etag_for, require_if_match
from casework.errors import Unauthorized
from casework.pagination import PageArgs, page_size
from casework.sync import auth, conflicts, pull, push, service
from casework.sync.models import Device
from casework.sync.schemas import (
    ChangesArgs,
    ChangesOut,
    ConflictListOut,
    ConflictOut,
    DeviceListOut,
    DeviceOut,
    EnrolIn,
    EnrolmentCodeIn,
    EnrolmentCodeOut,
    EnrolOut,
    PushIn,
    PushOut,
    ResolveIn,
)

devices_blp = Blueprint(
    "devices",
    __name__,
    url_prefix=f"{API_PREFIX}/devices",
    description="Field devices: enrolment codes, enrolment, revocation.",
)
sync_blp = Blueprint(
    "sync",
    __name__,
    url_prefix=f"{API_PREFIX}/sync",
    description=(
        "Field-office sync. Every request is signed by the device (RFC 9421, Ed25519, label "
        '`sig1`, components `"@method" "@target-uri"`, then `"content-digest"` (RFC 9530, '
        'sha-256) with a body and `"authorization"` with a token; parameters `created`, '
        '`nonce`, `keyid` (the device id) and `alg="ed25519"`) and carries a token from a '
        "sign-in signed by the same device. Refusals: 401 "
        "`urn:casework:problem:bad-signature` (with `server_time` and `Date` when the clock "
        "is off by more than 300 s), 401 `urn:casework:problem:device-revoked` (wipe the "
        "replica). See docs/sync.md."
    ),
)

_PROBLEMS = {
    401: "Missing or bad signature (bad-signature), revoked device (device-revoked) or token.",
    403: "The caller's role does not permit this.",
    404: "No such resource.",
    409: "The state does not allow it (resync-required for a pull cursor).",
    412: "The resource has changed (If-Match).",
    422: "The request is not valid; see errors.",
    428: "If-Match is required.",
}
IF_MATCH = {
    "in": "header",
    "name": "If-Match",
    "required": True,
    "schema": {"type": "string"},
    "description": "The conflict's ETag; stale: 412, missing: 428.",
}
dev_problems = problem_responses(devices_blp, _PROBLEMS)
sync_problems = problem_responses(sync_blp, _PROBLEMS)


def _signed_device() -> Device:
    """The device that signed a sync request made for a person (both are required)."""
    principal = require_principal()
    device = auth.current_device()
    if principal.device_id != str(device.id):
        raise Unauthorized("Sync needs a token bound to the signing device.")
    return device


@devices_blp.route("/enrolment-codes")
class EnrolmentCodes(MethodView):
    @requires(Permission.DEVICES_MANAGE)
    @devices_blp.arguments(EnrolmentCodeIn)
    @devices_blp.response(201, EnrolmentCodeOut)
    @dev_problems(401, 403, 422)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """A one-time code (15 minutes) that enrols one device into an office."""
        issued = service.issue_enrolment_code(
            db.session(), require_principal(), body["office"], body["label"]
        )
        return {"code": issued.code, "expires_at": issued.expires_at}


@devices_blp.route("")
class Devices(MethodView):
    @requires(Permission.DEVICES_MANAGE)
    @devices_blp.response(200, DeviceListOut)
    @dev_problems(401, 403)
    def get(self) -> dict[str, Any]:
        """Every enrolled device, revoked ones included."""
        return {"items": service.list_devices(db.session())}

    @public
    @devices_blp.arguments(EnrolIn)
    @devices_blp.response(201, EnrolOut)
    @dev_problems(422)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Enrol a device: its Ed25519 public key, proven by signing the one-time code.

        The one device request that is not signed: the code authenticates it.
        The server keeps only the public key."""
        device = service.enrol(db.session(), body["code"], body["public_key"], body["proof"])
        return {"device_id": device.id, "office": device.office_code}


@devices_blp.route("/<uuid:device_id>/revoke")
class DeviceRevoke(MethodView):
    @requires(Permission.DEVICES_MANAGE)
    @devices_blp.response(200, DeviceOut)
    @dev_problems(401, 403, 404)
    def post(self, device_id: uuid.UUID) -> Device:
        """Revoke a device: its next request answers 401 device-revoked (wipe the replica)."""
        return service.revoke(db.session(), device_id)


@sync_blp.route("/changes")
class Changes(MethodView):
    @requires(Permission.SYNC_PULL)
    @sync_blp.arguments(ChangesArgs, location="query")
    @sync_blp.response(200, ChangesOut)
    @sync_problems(401, 403, 409, 422)
    def get(self, args: dict[str, Any]) -> Response:
        """The office's changes after `cursor`, in the order they committed.

        A pull without a cursor yields one `upsert` per case in scope (the snapshot), then
        continues live. Sequence numbers are visible in commit order: a change that commits
        later never appears behind a cursor already handed out. Each case pulled is
        recorded in the access log with the user and the device. `checkpoint` describes
        the office at `checkpoint.seq`: after the last page (`more` false) the replica
        must hold `count` cases whose (reference, version) pairs give `checksum`
        (see its description)."""
        device = _signed_device()
        page = pull.pull(db.session(), device, args["cursor"], args["limit"])
        # Serialised once, as the schema would (its fields pass the values through): a
        # page holds up to 500 cases, and dumping each through the schema cost more
        # than the rest of the pull.
        return current_app.json.response(page)


@sync_blp.route("/push")
class Push(MethodView):
    @requires(Permission.SYNC_PUSH)
    @sync_blp.arguments(PushIn)
    @sync_blp.response(200, PushOut)
    @sync_problems(401, 403, 422)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Apply up to 100 offline mutations, each exactly once, in device order.

        One result per mutation, in order. A mutation received again answers its stored
        result as `duplicate`, forever; the same `mutation_id` with another body is
        `rejected` (`reused-id`). `device_seq` goes up by one per device: a gap answers
        `out_of_order` with `expected_seq` and nothing after it is applied; every final
        result uses up its number. A rejected mutation never blocks the next ones.
        Updates merge field by field against `base_version`; fields both sides changed
        keep the server's value and the device's proposal becomes a conflict."""
        device = _signed_device()
        return push.push(db.session(), require_principal(), device.id, body["mutations"])


@sync_blp.route("/conflicts")
class Conflicts(MethodView):
    @requires(Permission.CASES_READ)
    @sync_blp.arguments(PageArgs, location="query", unknown=RAISE)
    @sync_blp.response(200, ConflictListOut)
    @sync_problems(401, 403, 422)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Open conflicts of your office, oldest first, with both values (each read
        audited). Paged like every list: `limit`, and `cursor` from `next_cursor`."""
        items, next_cursor = conflicts.list_open(
            db.session(), require_principal(), limit=page_size(args["limit"]), cursor=args["cursor"]
        )
        return {"items": items, "next_cursor": next_cursor}


@sync_blp.route("/conflicts/<uuid:conflict_id>")
class ConflictById(MethodView):
    @requires(Permission.CASES_READ)
    @sync_blp.response(200, ConflictOut)
    @sync_problems(401, 403, 404)
    def get(self, conflict_id: uuid.UUID) -> tuple[dict[str, Any], int, dict[str, str]]:
        """One conflict of your office, with its ETag."""
        session = db.session()
        conflict = conflicts.get(session, require_principal(), conflict_id)
        return conflicts.read(session, conflict), 200, {"ETag": etag_for(conflict.version)}


@sync_blp.route("/conflicts/<uuid:conflict_id>/resolve")
class ConflictResolve(MethodView):
    @requires(Permission.CASES_WRITE)
    @sync_blp.arguments(ResolveIn)
    @sync_blp.response(200, ConflictOut)
    @sync_blp.doc(parameters=[IF_MATCH])
    @sync_problems(401, 403, 404, 409, 412, 422, 428)
    def post(
        self, body: dict[str, Any], conflict_id: uuid.UUID
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Keep the server's values, take the device's, or apply a merged PATCH body.

        The resolution is audited and reaches every device through the feed."""
        session = db.session()
        principal = require_principal()
        conflict = conflicts.get(session, principal, conflict_id)
        require_if_match(conflict.version)
        conflicts.resolve(session, principal, conflict, body["keep"], body.get("changes"))
        return conflicts.view(conflict), 200, {"ETag": etag_for(conflict.version)}
