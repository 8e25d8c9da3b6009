"""The auditor API: who may call it, filters and pages, export, verification, proofs."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from casework.audit import store, verification
from casework.audit.checkpoint import VerifierKey
from casework.audit.encoding import ChainedRecord
from casework.audit.export import CheckpointNote, parse_line, read_export
from casework.audit.models import AuditEntry
from casework.audit.proofs import verify_entry_proof
from casework.audit.verify import verify_export
from casework.db import get_db
from tests.audit.helpers import allow_tampering, audit_settings, fill
from tests.conftest import principal_headers

AUDITOR = principal_headers("auditor", user_id="u-auditor")
BASE = "/api/v1/audit"


@pytest.fixture
def log(app: Flask, db_session: Session) -> Any:
    """``log(count)`` appends entries; requests must not run inside its app context,
    or they would share ``g`` (and the caller's identity) with it."""

    def append(count: int) -> list[ChainedRecord]:
        with app.app_context():
            return fill(db_session, count)

    return append


def _entries_since(session: Session, seq: int) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.seq > seq).order_by(AuditEntry.seq)
    return list(session.scalars(query))


def _head(session: Session) -> int:
    return session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1)) or 0


def _verifier(client: FlaskClient) -> VerifierKey:
    return VerifierKey.parse(client.get(f"{BASE}/public-key").get_json()["verifier_key"])


# --- Access. ---

READS = ["/events", "/events/1/proof", "/export", "/verify"]


@pytest.mark.parametrize(
    ("role", "office", "allowed"),
    [
        ("auditor", None, True),
        ("caseworker", "kbl", False),
        ("supervisor", "kbl", False),
        ("admin", None, False),
    ],
)
def test_only_auditors_read_the_log(
    client: FlaskClient, log: Any, db_session: Session, role: str, office: str | None, allowed: bool
) -> None:
    log(2)
    client.post(f"{BASE}/checkpoints", headers=AUDITOR)  # so that a proof of seq 1 exists
    for path in READS:
        response = client.get(BASE + path, headers=principal_headers(role, office))
        assert response.status_code == (200 if allowed else 403), path
        if not allowed:
            assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    ("role", "office", "status"),
    [("auditor", None, 201), ("admin", None, 201), ("caseworker", "kbl", 403)],
)
def test_checkpoint_on_demand_needs_audit_checkpoint(
    client: FlaskClient, db_session: Session, role: str, office: str | None, status: int
) -> None:
    response = client.post(f"{BASE}/checkpoints", headers=principal_headers(role, office))
    assert response.status_code == status


def test_anonymous_callers_get_only_the_public_key(client: FlaskClient, app: Flask) -> None:
    for path in READS:
        assert client.get(BASE + path).status_code == 401
    assert client.post(f"{BASE}/checkpoints").status_code == 401
    body = client.get(f"{BASE}/public-key").get_json()
    with app.app_context():
        from casework.security.app import current_keyring

        public = current_keyring().verify_key.public_bytes_raw()
    key = VerifierKey.parse(body["verifier_key"])
    assert key.public_key.public_bytes_raw() == public
    assert body["origin"] == body["key_name"] == key.name == app.config["CASEWORK"]["audit_origin"]


def test_a_refused_reader_leaves_exactly_one_denied_entry(
    client: FlaskClient, db_session: Session
) -> None:
    before = _head(db_session)
    response = client.get(f"{BASE}/events?target=REF1", headers=principal_headers("admin"))
    assert response.status_code == 403
    new = _entries_since(db_session, before)
    assert [(e.action, e.outcome, e.role) for e in new] == [("authz.denied", "denied", "admin")]


# --- The event list. ---


def _all_pages(client: FlaskClient, query: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        body = client.get(f"{BASE}/events", query_string=params, headers=AUDITOR).get_json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def test_filters_answer_who_looked_at_this_case(
    client: FlaskClient, log: Any, db_session: Session
) -> None:
    start = _head(db_session)
    made = log(40)
    wanted = [e for e in made if e.record.target == "REF00000003"]
    found = _all_pages(client, {"target": "REF00000003", "limit": 2})
    assert [item["seq"] for item in found] == [e.seq for e in wanted]
    assert found[0]["fields"] == list(wanted[0].record.fields)
    assert found[0]["hash"] == wanted[0].hash.hex()
    both = _all_pages(client, {"actor": "u-2", "action": "case.update", "limit": 3})
    assert [i["seq"] for i in both] == [
        e.seq for e in made if e.record.actor == "u-2" and e.record.action == "case.update"
    ]
    denied = _all_pages(client, {"outcome": "denied", "limit": 200})
    assert {i["seq"] for i in denied} >= {e.seq for e in made if e.record.outcome == "denied"}
    assert all(i["outcome"] == "denied" for i in denied)
    assert start < found[0]["seq"]


def test_time_range_is_since_inclusive_until_exclusive(
    client: FlaskClient, log: Any, db_session: Session
) -> None:
    made = log(5)
    middle = made[2].record.at
    since = middle.isoformat()
    until = made[4].record.at.isoformat()
    query = {"since": since, "until": until, "limit": 200}
    body = client.get(f"{BASE}/events", query_string=query, headers=AUDITOR).get_json()
    assert [i["seq"] for i in body["items"]] == [made[2].seq, made[3].seq]


def test_pages_cover_the_log_once(client: FlaskClient, log: Any, db_session: Session) -> None:
    log(25)
    seqs = [item["seq"] for item in _all_pages(client, {"limit": 7})]
    assert seqs == list(range(1, seqs[-1] + 1))


def test_reading_is_recorded_with_filter_names_only(
    client: FlaskClient, db_session: Session
) -> None:
    before = _head(db_session)
    query = {"target": "REF00000009", "actor": "u-1"}
    assert client.get(f"{BASE}/events", query_string=query, headers=AUDITOR).status_code == 200
    [entry] = _entries_since(db_session, before)
    assert (entry.action, entry.actor, entry.role) == ("audit.read", "u-auditor", "auditor")
    assert entry.target == "REF00000009"
    assert entry.fields == '["actor", "target"]'


@pytest.mark.parametrize(
    "query",
    [
        {"case_name": "x"},  # unknown parameters are refused, not ignored
        {"action": "case.peek"},
        {"outcome": "maybe"},
        {"since": "2025-01-01T00:00:00"},  # no offset: ambiguous
        {"since": "2025-01-02T00:00:00Z", "until": "2025-01-01T00:00:00Z"},
        {"cursor": "not-a-cursor"},
        {"cursor": "eyJhZnRlciI6IngifQ"},  # {"after":"x"}
        {"limit": "100000"},
        {"target": "x" * 65},
    ],
)
def test_bad_queries_answer_422(
    client: FlaskClient, db_session: Session, query: dict[str, str]
) -> None:
    response = client.get(f"{BASE}/events", query_string=query, headers=AUDITOR)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


# --- Export. ---


def test_export_streams_and_verifies_with_only_the_public_key(
    client: FlaskClient, log: Any, db_session: Session, app: Flask
) -> None:
    with audit_settings(app, audit_checkpoint_every=10):
        log(35)
    response = client.get(f"{BASE}/export", headers=AUDITOR)
    assert response.status_code == 200
    assert response.mimetype == "application/jsonl"
    assert response.is_streamed
    lines = response.get_data(as_text=True).splitlines(keepends=True)
    items = list(read_export(lines))
    entries = [i for i in items if isinstance(i, ChainedRecord)]
    assert len(entries) == int(response.headers["X-Audit-Log-Size"])
    assert entries[-1].record.action == "audit.export"  # the export records itself
    assert entries[-1].record.actor == "u-auditor"
    for previous, item in itertools.pairwise(items):
        if isinstance(item, CheckpointNote):  # right after the entry it ends at
            assert isinstance(previous, ChainedRecord)
            assert f"\n{previous.seq}\n" in item.note
    key = _verifier(client)
    result = verify_export(lambda: iter(lines), key.public_key, key.name, key.name)
    assert result.ok, result.reason
    assert result.entries == len(entries)
    assert result.checkpoints >= 3


# --- Verification. ---


def test_verify_reports_ok_then_the_first_bad_seq(
    app: Flask, client: FlaskClient, log: Any, db_session: Session, connection: Connection
) -> None:
    made = log(12)
    client.post(f"{BASE}/checkpoints", headers=AUDITOR)
    body = client.get(f"{BASE}/verify", headers=AUDITOR).get_json()
    assert body["ok"] is True, body
    assert body["first_bad_seq"] is None
    assert body["entries"] == _head(db_session) - 1  # its own entry comes after the check
    victim = made[5].seq
    allow_tampering(connection)
    db_session.execute(text("UPDATE audit_log SET target = 'REF99' WHERE seq = :s"), {"s": victim})
    body = client.get(f"{BASE}/verify", headers=AUDITOR).get_json()
    assert (body["ok"], body["kind"]) == (True, "incremental")  # the prefix was verified before
    assert body["from_size"] > victim
    with app.app_context():  # the full verification a cron job runs (casework audit verify)
        outcome, row = verification.verify_service_log(
            db_session, store.in_session(db_session), full=True
        )
        verification.save(row, get_db(app).session_factory)
    assert (outcome.result.ok, outcome.result.first_bad_seq) == (False, victim)
    body = client.get(f"{BASE}/verify", headers=AUDITOR).get_json()
    assert (body["ok"], body["first_bad_seq"], body["kind"]) == (False, victim, "full")
    assert "REF99" not in body["reason"]
    last = _entries_since(db_session, _head(db_session) - 1)[0]
    assert (last.action, last.outcome) == ("audit.verify", "failure")


def test_verify_sees_a_truncated_table_as_a_rollback(
    client: FlaskClient, log: Any, db_session: Session, connection: Connection
) -> None:
    log(6)
    signed = client.post(f"{BASE}/checkpoints", headers=AUDITOR).get_json()["size"]
    allow_tampering(connection)
    db_session.execute(text("DELETE FROM audit_log WHERE seq > :s"), {"s": signed - 3})
    body = client.get(f"{BASE}/verify", headers=AUDITOR).get_json()
    assert (body["ok"], body["first_bad_seq"]) == (False, signed - 2)
    assert "rollback" in body["reason"]


# --- Checkpoints and proofs. ---


def test_checkpoint_on_demand_then_prove_one_entry(
    client: FlaskClient, log: Any, db_session: Session
) -> None:
    made = log(30)
    created = client.post(f"{BASE}/checkpoints", headers=AUDITOR)
    assert created.status_code == 201
    checkpoint = created.get_json()
    assert checkpoint["size"] == _head(db_session)
    latest = client.get(f"{BASE}/checkpoints/latest", headers=AUDITOR).get_json()
    assert latest == checkpoint
    victim = made[17]
    proof = client.get(f"{BASE}/events/{victim.seq}/proof", headers=AUDITOR).get_json()
    assert proof["tree_size"] == checkpoint["size"]
    assert proof["checkpoint"] == checkpoint["note"]
    entry = parse_line('{"kind":"entry",' + _json(proof["entry"])[1:] + "\n")
    assert isinstance(entry, ChainedRecord)
    key = _verifier(client)
    path = [bytes.fromhex(node) for node in proof["audit_path"]]
    verified = verify_entry_proof(entry, path, proof["checkpoint"], key, key.name)
    assert verified.size == checkpoint["size"]


def _json(document: dict[str, Any]) -> str:
    import json

    return json.dumps(document, separators=(",", ":"))


def test_proof_is_404_until_a_checkpoint_covers_the_entry(
    client: FlaskClient, log: Any, db_session: Session
) -> None:
    client.post(f"{BASE}/checkpoints", headers=AUDITOR)
    uncovered = log(1)[0].seq
    response = client.get(f"{BASE}/events/{uncovered}/proof", headers=AUDITOR)
    assert response.status_code == 404
    assert "checkpoint" in response.get_json()["detail"]
    for seq in (0, uncovered + 5, 2**70):
        assert client.get(f"{BASE}/events/{seq}/proof", headers=AUDITOR).status_code == 404


def test_checkpoint_refused_on_a_broken_log_keeps_the_failure(
    client: FlaskClient, log: Any, db_session: Session, connection: Connection
) -> None:
    client.post(f"{BASE}/checkpoints", headers=AUDITOR)
    victim = log(3)[1].seq
    allow_tampering(connection)
    db_session.execute(
        text("UPDATE audit_log SET outcome = 'failure' WHERE seq = :s"), {"s": victim}
    )
    response = client.post(f"{BASE}/checkpoints", headers=AUDITOR)
    assert response.status_code == 409
    assert response.get_json()["first_bad_seq"] == victim
    last = _entries_since(db_session, _head(db_session) - 1)[0]
    assert (last.action, last.outcome) == ("audit.checkpoint", "failure")


def test_checkpoint_request_body_rejects_unknown_fields(
    client: FlaskClient, db_session: Session
) -> None:
    response = client.post(f"{BASE}/checkpoints", json={"size": 3}, headers=AUDITOR)
    assert response.status_code == 422


def test_every_route_is_documented(client: FlaskClient) -> None:
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    audit_paths = {p for p in paths if p.startswith(BASE)}
    assert audit_paths == {
        f"{BASE}/public-key",
        f"{BASE}/events",
        f"{BASE}/events/{{seq}}/proof",
        f"{BASE}/export",
        f"{BASE}/verify",
        f"{BASE}/checkpoints",
        f"{BASE}/checkpoints/latest",
        f"{BASE}/actors/{{actor}}",
        f"{BASE}/proofs/consistency",
        f"{BASE}/tiles/tile/{{level}}/{{index}}",
        f"{BASE}/keys",
        f"{BASE}/witnesses",
        f"{BASE}/cosignatures",
    }
    assert "application/jsonl" in paths[f"{BASE}/export"]["get"]["responses"]["200"]["content"]
    assert paths[f"{BASE}/events"]["get"]["x-permissions"] == ["audit:read"]
    assert paths[f"{BASE}/checkpoints"]["post"]["x-permissions"] == ["audit:checkpoint"]
    assert paths[f"{BASE}/public-key"]["get"]["security"] == []
    not_found = paths[f"{BASE}/events/{{seq}}/proof"]["get"]["responses"]["404"]
    assert "application/problem+json" in not_found["content"]


@pytest.mark.parametrize(
    ("column", "value"),
    [("outcome", "hacked"), ("fields", "not json"), ("fields", '{"a": 1}'), ("hash", b"short")],
)
def test_an_unreadable_row_is_named_not_a_crash(
    client: FlaskClient,
    log: Any,
    db_session: Session,
    connection: Connection,
    column: str,
    value: Any,
) -> None:
    client.post(f"{BASE}/checkpoints", headers=AUDITOR)
    victim = log(3)[1].seq
    allow_tampering(connection)
    db_session.execute(
        text(f"UPDATE audit_log SET {column} = :v WHERE seq = :s"), {"v": value, "s": victim}
    )
    body = client.get(f"{BASE}/verify", headers=AUDITOR).get_json()
    assert (body["ok"], body["first_bad_seq"]) == (False, victim)
    listed = client.get(f"{BASE}/events", query_string={"limit": 200}, headers=AUDITOR)
    assert listed.status_code == 200
    refused = client.post(f"{BASE}/checkpoints", headers=AUDITOR)
    assert (refused.status_code, refused.get_json()["first_bad_seq"]) == (409, victim)
    lines = client.get(f"{BASE}/export", headers=AUDITOR).get_data(as_text=True)
    key = _verifier(client)
    result = verify_export(
        lambda: iter(lines.splitlines(keepends=True)), key.public_key, key.name, key.name
    )
    assert (result.ok, result.first_bad_seq) == (False, victim)


@pytest.mark.parametrize("body", [None, {}])
def test_a_checkpoint_request_body_is_optional_and_strict(client: FlaskClient, body: Any) -> None:
    """The document says the body may be omitted; an empty object is the same request."""
    assert client.post(f"{BASE}/checkpoints", json=body, headers=AUDITOR).status_code == 201
    refused = client.post(f"{BASE}/checkpoints", json={"size": 3}, headers=AUDITOR)
    assert refused.status_code == 422
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["paths"]["/api/v1/audit/checkpoints"]["post"]["requestBody"]["required"] is False
