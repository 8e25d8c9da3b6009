"""Routes: the auditor API (``/api/v1/audit``).

Reading the log is itself logged: listing (``audit.read``), exporting
(``audit.export``), verifying (``audit.verify``) and proving (``audit.proof``)
each append an entry, after the read so that a listed page never shows its own
entry. Auditors hold ``audit:read`` and see entries only, never case contents.

The public key is public on purpose: it is what a verifier outside the service
(a donor's auditor, a witness) pins, it reveals nothing about the log, and an
anonymous call to it writes nothing, so it cannot be used to flood the log.
"""

from __future__ import annotations

import base64
from dataclasses import asdict
from functools import partial
from typing import Any

from flask import Response
from flask.views import MethodView
from marshmallow import RAISE

from casework import db
from casework.api import Blueprint, problem_responses
from casework.audit import actors, keys, service, signer, store, tiles, verification, witnesses
from casework.audit.actions import AuditAction, Outcome
from casework.audit.export import entry_document, format_time
from casework.audit.models import from_micros
from casework.audit.schemas import (
    CheckpointRequestSchema,
    CheckpointSchema,
    ConsistencyArgs,
    ConsistencySchema,
    CosignatureRequestSchema,
    CosignatureSchema,
    EventFilterArgs,
    EventPageSchema,
    KeysSchema,
    LatestCheckpointArgs,
    ProofSchema,
    PublicKeySchema,
    VerifyResultSchema,
    WitnessRequestSchema,
    WitnessSchema,
)
from casework.authz.access import public, requires
from casework.authz.permissions import Permission
from casework.errors import Conflict, NotFound

EXPORT_MIME = "application/jsonl"
TILE_MIME = "application/octet-stream"

blp = Blueprint(
    "audit",
    __name__,
    url_prefix="/api/v1/audit",
    description="The tamper-evident access log: events, export, verification, proofs.",
)

_PROBLEMS = {
    404: "No such entry, or no signed checkpoint covers it yet.",
    409: "The stored log does not verify; nothing was signed.",
    422: "A parameter is not valid; see errors.",
    503: "The keyring is not available.",
}


_EXPORT_DOC = {
    "description": "The log as JSON Lines, streamed.",
    "content": {
        EXPORT_MIME: {
            "schema": {
                "type": "string",
                "description": (
                    "One JSON object per line: every entry in seq order ({kind: entry, ...} "
                    "with the fields of an event), each signed checkpoint ({kind: checkpoint, "
                    "note}) after the entry it ends at. Format: casework/audit/export.py."
                ),
            }
        }
    },
    "headers": {
        "X-Audit-Log-Size": {
            "description": "Entries in this export: a shorter download was cut off.",
            "schema": {"type": "integer"},
        }
    },
}


problems = problem_responses(blp, _PROBLEMS)
"""Document the problem+json answers a view can give."""


@blp.route("/public-key")
class PublicKey(MethodView):
    @public
    @blp.response(200, PublicKeySchema)
    @problems(503)
    def get(self) -> dict[str, str]:
        """The checkpoint-signing public key and the verifier key string to pin."""
        identity = signer.log_identity()
        return {
            "algorithm": "ed25519",
            "origin": identity.origin,
            "key_name": identity.key_name,
            "public_key": base64.b64encode(identity.public_key.public_bytes_raw()).decode(),
            "verifier_key": identity.verifier_key,
        }


@blp.route("/events")
class Events(MethodView):
    @requires(Permission.AUDIT_READ)
    @blp.arguments(EventFilterArgs, location="query", unknown=RAISE)
    @blp.response(200, EventPageSchema)
    @problems(422)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Entries matching every filter given, oldest first, a page at a time.

        Recorded as ``audit.read`` with the target filter as its target and the
        names (not values) of the filters used as its fields. The first page
        fixes the log size; later pages never include entries appended since.
        """
        filters = {k: v for k, v in args.items() if k not in ("limit", "cursor")}
        session = db.session()
        if "actor" in filters:  # an id, or a username the resolvers know
            filters["actor"] = actors.actor_id(session, filters["actor"])
        entries, next_cursor = store.list_events(session, filters, args["limit"], args["cursor"])
        service.record(AuditAction.AUDIT_READ, target=filters.get("target"), fields=list(filters))
        return {"items": [entry_document(e) for e in entries], "next_cursor": next_cursor}


@blp.route("/events/<int:seq>/proof")
class EventProof(MethodView):
    @requires(Permission.AUDIT_READ)
    @blp.response(200, ProofSchema)
    @problems(404)
    def get(self, seq: int) -> dict[str, Any]:
        """The Merkle audit path from entry ``seq`` to the latest signed checkpoint.

        404 until a checkpoint covers the entry: proofs are not signed on
        demand, so that reading stays a read; ask for one with
        ``POST /api/v1/audit/checkpoints`` (``audit:checkpoint``).
        """
        proof = store.inclusion_proof(db.session(), seq)
        service.record(AuditAction.AUDIT_PROOF, target=f"seq:{seq}")
        return {
            "entry": entry_document(proof.entry),
            "leaf_index": seq - 1,
            "tree_size": proof.tree_size,
            "audit_path": [node.hex() for node in proof.path],
            "checkpoint": proof.note,
        }


@blp.route("/proofs/consistency")
class ConsistencyProof(MethodView):
    @public
    @blp.arguments(ConsistencyArgs, location="query", unknown=RAISE)
    @blp.response(200, ConsistencySchema)
    @problems(404, 422)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The proof that the tree of size ``from`` is a prefix of the tree of size ``to``.

        Public, like a transparency log's: it holds hashes only. Read from the
        hash tiles (O(log n) rows). ``to`` must not exceed the latest signed
        checkpoint's size.
        """
        old, new = args["from_"], args["to"]
        proof = store.consistency_proof(db.session(), old, new)
        return {"from": old, "to": new, "proof": [node.hex() for node in proof]}


_TILE_DOC = {
    "description": "The tile's hashes, 32 raw bytes each, concatenated (C2SP tlog-tiles).",
    "content": {TILE_MIME: {"schema": {"type": "string", "format": "binary"}}},
}


@blp.route("/tiles/tile/<int:level>/<path:index>")
class HashTile(MethodView):
    @public
    @blp.response(200, content_type=TILE_MIME, description=_TILE_DOC["description"])
    @blp.doc(responses={"200": _TILE_DOC})
    @problems(404)
    def get(self, level: int, index: str) -> Response:
        """A hash tile in the C2SP ``tlog-tiles`` layout: ``tile/<L>/<N>[.p/<W>]``.

        ``N`` is written in groups of three digits, all but the last prefixed
        with ``x`` (``x001/x234/067``); ``.p/<W>`` names a partial tile of
        ``W`` hashes. Entry bundles are not served: entries name staff and
        case references. A full tile never changes.
        """
        try:
            number, width = tiles.parse_index(index)
        except ValueError:
            raise NotFound("No such tile.") from None
        data = store.tile_hashes(db.session(), level, number, width)
        return Response(data, mimetype=TILE_MIME)


@blp.route("/export")
class Export(MethodView):
    @requires(Permission.AUDIT_READ)
    @blp.response(200, content_type=EXPORT_MIME, description="The log as JSON Lines, streamed.")
    @blp.doc(responses={"200": _EXPORT_DOC})
    def get(self) -> Response:
        """Stream the whole log for offline verification with only the public key.

        The export's own ``audit.export`` entry is its last entry. Rows are
        streamed from the database a page at a time after the request commits.
        """
        service.record(AuditAction.AUDIT_EXPORT)
        service.flush_pending()  # durable now, so that the export ends with it
        with db.get_db().session_factory() as fresh:  # a snapshot that holds it
            state = store.log_state(fresh)
        read = store.in_short_sessions(partial(db.read_only_session, db.get_db()))
        return Response(
            store.export_lines(read, state.size, state.notes),
            mimetype=EXPORT_MIME,
            headers={
                "Content-Disposition": f'attachment; filename="audit-log-{state.size}.jsonl"',
                "X-Audit-Log-Size": str(state.size),
            },
        )


@blp.route("/verify")
class Verify(MethodView):
    @requires(Permission.AUDIT_READ)
    @blp.response(200, VerifyResultSchema)
    @problems(503)
    def get(self) -> dict[str, Any]:
        """The latest verification of the stored log, extended over the entries since.

        Answers 200 either way; ``ok`` says whether the log verified and
        ``first_bad_seq`` where it stops being the signed history. Reads only
        the entries after the last verified size (``from_size``), in this
        request's snapshot, with no write lock. A full verification runs from
        ``casework audit verify`` (cron); ``kind`` and ``verified_at`` say
        which outcome this is and when it was reached.
        """
        session = db.session()
        outcome, row = verification.verify_service_log(
            session, store.in_session(session), full=False
        )
        verification.save(row, db.get_db().session_factory)
        result = outcome.result
        service.record(
            AuditAction.AUDIT_VERIFY, outcome=Outcome.SUCCESS if result.ok else Outcome.FAILURE
        )
        return {
            **asdict(result),
            "kind": outcome.kind,
            "from_size": outcome.from_size,
            "size": outcome.size,
            "verified_at": format_time(from_micros(outcome.at_us)),
        }


@blp.route("/checkpoints")
class Checkpoints(MethodView):
    @requires(Permission.AUDIT_CHECKPOINT)
    @blp.arguments(CheckpointRequestSchema, required=False)
    @blp.response(201, CheckpointSchema)
    @problems(409, 422, 503)
    def post(self, _options: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Sign a checkpoint of the whole log now, covering this request's own entry."""
        try:
            checkpoint = service.checkpoint_now(db.session())
        except signer.LogIntegrityError as error:
            db.persist_despite_error()  # keep the failure entry
            raise Conflict(
                f"The log does not verify at seq {error.seq}; nothing was signed.",
                first_bad_seq=error.seq,
            ) from None
        return store.checkpoint_document(db.session(), checkpoint), 201


@blp.route("/checkpoints/latest")
class LatestCheckpoint(MethodView):
    @public
    @blp.arguments(LatestCheckpointArgs, location="query", unknown=RAISE)
    @blp.response(200, CheckpointSchema)
    @problems(404)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The latest signed checkpoint, with its witnesses' cosignatures.

        Public, like a transparency log's (hashes only; an anonymous call
        writes nothing). The note is a C2SP signed note: the body is a plain
        checkpoint, the signature lines are the log's and then one per
        witness (C2SP tlog-cosignature, with its time). With
        ``cosigned=true``: the latest checkpoint that has a cosignature.
        """
        session = db.session()
        if args["cosigned"]:
            checkpoint = witnesses.latest_cosigned(session)
            if checkpoint is None:
                raise NotFound("No checkpoint has been cosigned yet.")
        else:
            checkpoint = store.latest_checkpoint_or_404(session)
        return store.checkpoint_document(session, checkpoint)


@blp.route("/keys")
class SigningKeys(MethodView):
    @public
    @blp.response(200, KeysSchema)
    @problems(503)
    def get(self) -> dict[str, Any]:
        """Every checkpoint-signing key, oldest first, with the log size from which it signs.

        Each key after the first comes with its rotation statement, signed by
        the key before it and by itself: a verifier that pinned any of them
        follows the chain to the current one.
        """
        origin = signer.log_identity().origin
        chain = keys.chain(db.session(), origin)
        return {
            "keys": [
                {
                    "vkey": record.vkey,
                    "key_id": record.vkey.split("+")[1],
                    "from_size": record.from_size,
                    "statement": record.statement,
                }
                for record in chain
            ]
        }


@blp.route("/witnesses")
class Witnesses(MethodView):
    @requires(Permission.KEYS_MANAGE)
    @blp.arguments(WitnessRequestSchema)
    @blp.response(201, WitnessSchema)
    @problems(409, 422)
    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Register a witness by its C2SP vkey; its cosignatures are accepted from then on."""
        key = witnesses.register(db.session(), body["vkey"])
        service.record(AuditAction.AUDIT_WITNESS_REGISTER, target=f"witness:{key.key_id.hex()}")
        return {"name": key.name, "vkey": key.encode()}, 201


@blp.route("/cosignatures")
class Cosignatures(MethodView):
    @public
    @blp.arguments(CosignatureRequestSchema)
    @blp.response(201, CosignatureSchema)
    @problems(404, 409, 422)
    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """A witness posts its cosignature of a checkpoint; the cosignature is its credential.

        Accepted when it verifies under a registered witness key over the
        stored checkpoint of ``size`` and that checkpoint is consistent with
        the last one the same witness cosigned.
        """
        session = db.session()
        accepted = witnesses.accept(session, body["size"], body["cosignature"])
        service.record(AuditAction.AUDIT_COSIGN, target=f"checkpoint:{body['size']}")
        return {"size": body["size"], "name": accepted.name, "time": accepted.time}, 201
