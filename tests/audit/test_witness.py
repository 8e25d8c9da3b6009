"""Witnesses, cosignatures, key rotation, and the tamper suite against witnessed checkpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from casework.audit import keys, merkle, service, signer, witness
from casework.audit.checkpoint import VerifierKey, sign_checkpoint, sign_note
from casework.audit.encoding import chain
from casework.audit.models import AuditCheckpoint, AuditEntry, AuditKey, chained_from_row
from casework.cli import main as casework_cli
from tests.audit.helpers import allow_tampering, fill
from tests.conftest import principal_headers

BASE = "/api/v1/audit"
ADMIN = principal_headers("admin", user_id="u-admin")
AUDITOR = principal_headers("auditor", user_id="u-auditor")
URL = "http://casework.test"


class ClientTransport:
    """The witness's HTTP, through the application's test client (the real routes)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def get_json(self, url: str) -> Any:
        response = self.client.get(url.removeprefix(URL))
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def post_json(self, url: str, body: dict[str, Any]) -> tuple[int, Any]:
        response = self.client.post(url.removeprefix(URL), json=body)
        return response.status_code, response.get_json()


class Witness:
    def __init__(self, client: FlaskClient, folder: Path, name: str = "witness.test/w1") -> None:
        self.client = client
        self.state = folder / f"{name.replace('/', '_')}.state.json"
        self.key_path = folder / f"{name.replace('/', '_')}.key.json"
        private, self.name = witness.load_or_create_key(self.key_path, name)
        self.vkey = witness.WitnessKey(self.name, private.public_key()).encode()

    def register(self) -> None:
        response = self.client.post(f"{BASE}/witnesses", json={"vkey": self.vkey}, headers=ADMIN)
        assert response.status_code == 201, response.get_json()

    def run(self) -> dict[str, Any]:
        transport = ClientTransport(self.client)
        return witness.run_once(URL, self.state, self.key_path, self.name, transport)


@pytest.fixture
def log(app: Flask, db_session: Session) -> Any:
    def append(count: int, checkpoint: bool = True) -> None:
        with app.app_context():
            fill(db_session, count)
            if checkpoint:
                service.checkpoint_now(db_session)

    return append


@pytest.fixture
def run(app: Flask, db_session: Session) -> Any:
    runner = app.test_cli_runner()

    def invoke(*args: str) -> Result:
        return runner.invoke(casework_cli, list(args))

    return invoke


def _verify(run: Any, state: Path) -> dict[str, Any]:
    result = run("audit", "verify", "--witnessed", str(state))
    answer: dict[str, Any] = json.loads(result.output.strip().splitlines()[-1])
    assert result.exit_code == (0 if answer["ok"] else 1)
    return answer


def _head(session: Session) -> int:
    return session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1)) or 0


# --- The witness protocol. ---


def test_a_witness_cosigns_and_the_latest_checkpoint_carries_it(
    client: FlaskClient, log: Any, tmp_path: Path
) -> None:
    w = Witness(client, tmp_path)
    w.register()
    log(10)
    first = w.run()
    log(40)
    second = w.run()  # checked consistent with the first before cosigning
    assert second["size"] > first["size"]
    latest = client.get(f"{BASE}/checkpoints/latest").get_json()
    assert latest["size"] == second["size"]
    assert [c["name"] for c in latest["cosignatures"]] == [w.name]
    assert latest["cosignatures"][0]["time"] == second["time"]
    body, lines = witness.split_note(latest["note"])
    assert len(lines) == 2  # the log's signature, then the witness's
    key = witness.WitnessKey.parse(w.vkey)
    assert witness.verify_cosignature(lines[1], key, body) == second["time"]
    log(5)  # a newer checkpoint, not cosigned yet
    assert client.get(f"{BASE}/checkpoints/latest").get_json()["cosignatures"] == []
    cosigned = client.get(f"{BASE}/checkpoints/latest?cosigned=true").get_json()
    assert cosigned["size"] == second["size"]


def test_a_cosignature_needs_a_registered_key_and_a_valid_signature(
    client: FlaskClient, log: Any, tmp_path: Path
) -> None:
    log(3)
    latest = client.get(f"{BASE}/checkpoints/latest").get_json()
    body = witness.note_body(latest["note"])
    private = Ed25519PrivateKey.generate()
    line = witness.cosign(private, "stranger.test", body, 1_700_000_000)
    answer = client.post(f"{BASE}/cosignatures", json={"size": latest["size"], "cosignature": line})
    assert answer.status_code == 422
    w = Witness(client, tmp_path)
    w.register()
    own, _ = witness.load_or_create_key(w.key_path, w.name)
    other_body = body.replace(str(latest["size"]), str(latest["size"] + 1), 1)
    forged = witness.cosign(own, w.name, other_body, 1_700_000_000)  # over another checkpoint
    bad = client.post(f"{BASE}/cosignatures", json={"size": latest["size"], "cosignature": forged})
    assert bad.status_code == 422
    missing = client.post(
        f"{BASE}/cosignatures",
        json={"size": 10**9, "cosignature": witness.cosign(own, w.name, body, 1)},
    )
    assert missing.status_code == 404
    good = witness.cosign(own, w.name, body, 1_700_000_000)
    ok = client.post(f"{BASE}/cosignatures", json={"size": latest["size"], "cosignature": good})
    assert ok.status_code == 201


def test_registering_a_witness_is_for_administrators(client: FlaskClient, tmp_path: Path) -> None:
    w = Witness(client, tmp_path)
    refused = client.post(f"{BASE}/witnesses", json={"vkey": w.vkey}, headers=AUDITOR)
    assert refused.status_code == 403
    malformed = client.post(f"{BASE}/witnesses", json={"vkey": "not+a+key"}, headers=ADMIN)
    assert malformed.status_code == 422


def test_the_witness_refuses_a_log_that_shrank_or_forked(
    app: Flask, client: FlaskClient, log: Any, db_session: Session, tmp_path: Path
) -> None:
    w = Witness(client, tmp_path)
    w.register()
    log(10)
    w.run()
    state = json.loads(w.state.read_text())
    state["root"] = "00" * 32  # as if the witness had seen another tree of this size
    w.state.write_text(json.dumps(state))
    with pytest.raises(witness.WitnessError, match="fork"):
        w.run()
    state["size"] += 1000
    w.state.write_text(json.dumps(state))
    with pytest.raises(witness.WitnessError, match="shrank"):
        w.run()


# --- The signing key: its own file, rotations in the log. ---


@pytest.fixture
def restore_signing_key(app: Flask) -> Iterator[None]:
    """A rotation replaces the key file, which outlives the test's rolled-back database."""
    with app.app_context():
        keys.signing_key()
        holder = keys.key_file()
    saved = holder.path.read_bytes()
    yield
    holder.path.write_bytes(saved)
    holder.reload()


@pytest.mark.usefixtures("restore_signing_key")
def test_rotation_is_in_the_log_signed_by_both_keys(
    app: Flask, client: FlaskClient, log: Any, run: Any, db_session: Session, tmp_path: Path
) -> None:
    w = Witness(client, tmp_path)
    w.register()
    log(10)
    w.run()
    old_vkey = client.get(f"{BASE}/public-key").get_json()["verifier_key"]
    result = run("audit", "rotate-key")
    assert result.exit_code == 0, result.output
    rotated = json.loads(result.output)
    listed = client.get(f"{BASE}/keys").get_json()["keys"]
    assert [k["vkey"] for k in listed] == [old_vkey, rotated["vkey"]]
    assert listed[1]["from_size"] == rotated["from_size"]
    assert client.get(f"{BASE}/public-key").get_json()["verifier_key"] == rotated["vkey"]
    entry = db_session.get(AuditEntry, rotated["from_size"])
    assert entry is not None
    assert entry.action == "audit.key_rotate"
    checkpoint = db_session.get(AuditCheckpoint, rotated["from_size"])
    assert checkpoint is not None
    assert len(witness.split_note(checkpoint.note)[1]) == 2
    ranges = keys.follow_chain(
        VerifierKey.parse(old_vkey),
        [keys.KeyRecord(k["from_size"], k["vkey"], k["statement"]) for k in listed],
        app.config["CASEWORK"]["audit_origin"],
    )
    assert ranges[-1].key.encode() == rotated["vkey"]
    log(20)
    w.run()  # follows the chain from the key it pinned
    answer = _verify(run, w.state)  # no false alarm across the rotation
    assert answer["ok"], answer["reason"]
    assert answer["witnessed_size"] == json.loads(w.state.read_text())["size"]


# --- Tamper suite: an insider with the database (and the signing key) against a witness. ---


@pytest.fixture
def witnessed(client: FlaskClient, log: Any, db_session: Session, tmp_path: Path) -> Witness:
    w = Witness(client, tmp_path)
    w.register()
    log(30)
    w.run()
    log(30)
    w.run()
    log(15)  # entries after the witnessed checkpoint too
    return w


def _witnessed_size(w: Witness) -> int:
    size: int = json.loads(w.state.read_text())["size"]
    return size


def _rehash_from(session: Session, first: int) -> None:
    """Rewrite every entry from ``first`` on, re-chained so the chain itself holds."""
    rows = session.execute(
        select(AuditEntry).where(AuditEntry.seq >= first).order_by(AuditEntry.seq)
    )
    prev = session.scalar(select(AuditEntry.hash).where(AuditEntry.seq == first - 1))
    for (row,) in rows.all():
        record = chained_from_row(row).record
        if row.seq == first:
            record = type(record)(**{**_fields(record), "target": "FORGED"})
        sealed = chain(bytes(prev), record)
        session.execute(
            update(AuditEntry)
            .where(AuditEntry.seq == row.seq)
            .values(target=record.target, prev_hash=sealed.prev_hash, hash=sealed.hash)
            .execution_options(synchronize_session=False)
        )
        prev = sealed.hash
    session.expire_all()


def _fields(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__slots__}


def _resign_all(app: Flask, session: Session) -> None:
    """Delete every stored checkpoint and sign new ones over the rewritten log (stolen key)."""
    session.execute(delete(AuditCheckpoint))
    session.execute(text("DELETE FROM audit_tree"))
    session.execute(text("DELETE FROM audit_tiles"))
    with app.app_context():
        signer.sign_now(session)


def test_untampered_witnessed_log_verifies(witnessed: Witness, run: Any) -> None:
    answer = _verify(run, witnessed.state)
    assert answer["ok"], answer
    assert answer["witnessed_size"] == _witnessed_size(witnessed)


def test_an_edited_entry_behind_the_witness_is_named(
    witnessed: Witness, run: Any, db_session: Session
) -> None:
    allow_tampering(db_session.connection())
    db_session.execute(text("UPDATE audit_log SET target = 'FORGED' WHERE seq = 17"))
    answer = _verify(run, witnessed.state)
    assert (answer["ok"], answer["first_bad_seq"]) == (False, 17)


def test_a_rewrite_rehashed_and_resigned_is_caught_by_the_witness(
    app: Flask, witnessed: Witness, run: Any, db_session: Session
) -> None:
    allow_tampering(db_session.connection())
    _rehash_from(db_session, 40)
    _resign_all(app, db_session)  # the log's own checkpoints now vouch for the rewrite
    answer = _verify(run, witnessed.state)
    assert answer["ok"] is False
    assert answer["first_bad_seq"] is not None
    assert answer["first_bad_seq"] <= 40
    assert "fork" in answer["reason"] or "does not match" in answer["reason"]


def test_truncation_with_the_later_checkpoints_deleted_is_named(
    witnessed: Witness, run: Any, db_session: Session
) -> None:
    allow_tampering(db_session.connection())
    cut = _witnessed_size(witnessed) - 10
    db_session.execute(text("DELETE FROM audit_log WHERE seq > :cut"), {"cut": cut})
    db_session.execute(text("DELETE FROM audit_checkpoints WHERE size > :cut"), {"cut": cut})
    answer = _verify(run, witnessed.state)
    assert (answer["ok"], answer["first_bad_seq"]) == (False, cut + 1)
    assert "rollback" in answer["reason"]


def test_a_fork_same_size_other_root_is_named(
    app: Flask, witnessed: Witness, run: Any, db_session: Session
) -> None:
    allow_tampering(db_session.connection())
    size = _witnessed_size(witnessed)
    db_session.execute(text("DELETE FROM audit_log WHERE seq > :s"), {"s": size})
    _rehash_from(db_session, size - 5)
    _resign_all(app, db_session)  # a checkpoint of the witnessed size, with another root
    answer = _verify(run, witnessed.state)
    assert answer["ok"] is False
    assert "fork" in answer["reason"]
    assert answer["first_bad_seq"] is not None
    assert answer["first_bad_seq"] <= size - 5


def test_a_key_replaced_without_a_signed_rotation_is_detected(
    app: Flask, witnessed: Witness, run: Any, log: Any, db_session: Session
) -> None:
    log(5, checkpoint=False)
    allow_tampering(db_session.connection())
    origin = app.config["CASEWORK"]["audit_origin"]
    old = VerifierKey.parse(json.loads(witnessed.state.read_text())["log_key"])
    intruder = Ed25519PrivateKey.generate()
    head = _head(db_session)
    db_session.add(AuditKey(from_size=0, vkey=old.encode(), statement=None, created_at_us=0))
    forged_statement = sign_note(  # signed by the intruder alone: not a rotation
        intruder, origin, keys.rotation_body(origin, head, old.encode(), "x")
    )
    db_session.add(
        AuditKey(
            from_size=head,
            vkey=VerifierKey(origin, intruder.public_key()).encode(),
            statement=forged_statement,
            created_at_us=0,
        )
    )
    root = merkle.root(
        [bytes(h) for h in db_session.scalars(select(AuditEntry.hash).order_by(AuditEntry.seq))]
    )
    db_session.add(
        AuditCheckpoint(
            size=head,
            root=root,
            frontier=b"",
            note=sign_checkpoint(intruder, origin, origin, head, root),
            signed_at_us=0,
        )
    )
    db_session.flush()
    answer = _verify(run, witnessed.state)
    assert answer["ok"] is False
    assert "without a rotation signed" in answer["reason"]
    assert answer["first_bad_seq"] is not None
    assert answer["first_bad_seq"] <= head + 1


def test_key_chain_refuses_a_statement_signed_by_the_new_key_only() -> None:
    origin = "casework.test/audit"
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    old_v = VerifierKey(origin, old.public_key())
    new_v = VerifierKey(origin, new.public_key())
    body = keys.rotation_body(origin, 10, old_v.encode(), new_v.encode())
    only_new = sign_note(new, origin, body)
    records = [
        keys.KeyRecord(0, old_v.encode(), None),
        keys.KeyRecord(10, new_v.encode(), only_new),
    ]
    with pytest.raises(keys.KeyChainError):
        keys.follow_chain(old_v, records, origin)
    both = keys.sign_both(old, new, origin, body)
    records[1] = keys.KeyRecord(10, new_v.encode(), both)
    ranges = keys.follow_chain(old_v, records, origin)
    assert [(r.from_size, r.until_size) for r in ranges] == [(0, 10), (10, None)]
