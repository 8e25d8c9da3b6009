"""Signed checkpoints of the stored log: when they are signed, what they sign, when they refuse."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from casework import audit, create_app
from casework.audit import keys, service, signer
from casework.audit.checkpoint import parse_and_verify_checkpoint
from casework.audit.merkle import root
from casework.audit.models import AuditCheckpoint, AuditEntry
from casework.config import ConfigError
from casework.security.errors import KeyringError
from tests.audit.helpers import allow_tampering, audit_settings, fill


@pytest.fixture
def in_app(app: Flask, db_session: Session) -> Iterator[Session]:
    """The test session inside an application context (configuration and keyring)."""
    with app.app_context():
        yield db_session


def _checkpoints(session: Session) -> list[AuditCheckpoint]:
    return list(session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size)))


def _hashes(session: Session, upto: int) -> list[bytes]:
    query = select(AuditEntry.hash).where(AuditEntry.seq <= upto).order_by(AuditEntry.seq)
    return [bytes(h) for h in session.scalars(query)]


def _assert_genuine(app: Flask, session: Session, checkpoint: AuditCheckpoint) -> None:
    """The note is signed by the keyring's key and states the true root of the log."""
    identity = signer.log_identity()
    parsed = parse_and_verify_checkpoint(
        checkpoint.note, identity.public_key, identity.key_name, identity.origin
    )
    assert parsed.size == checkpoint.size
    assert parsed.root == bytes(checkpoint.root) == root(_hashes(session, checkpoint.size))


def test_first_append_signs_then_every_n_entries(app: Flask, in_app: Session) -> None:
    with audit_settings(app, audit_checkpoint_every=5, audit_checkpoint_minutes=0):
        before = _checkpoints(in_app)
        entries = fill(in_app, 23)
    new = [c for c in _checkpoints(in_app) if c not in before]
    sizes = [c.size for c in new]
    if not before:  # an empty log: the first append is signed at once
        assert sizes[0] == entries[0].seq
    assert all(later - earlier == 5 for earlier, later in itertools.pairwise(sizes))
    assert entries[-1].seq - sizes[-1] < 5
    for checkpoint in new:  # each extends the stored frontier of the one before it
        _assert_genuine(app, in_app, checkpoint)


def test_timed_checkpoint(app: Flask, in_app: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    with audit_settings(app, audit_checkpoint_every=0, audit_checkpoint_minutes=10):
        fill(in_app, 1)  # signs one unless one was recent: the clock starts here
        start = signer.now_micros()
        latest = _checkpoints(in_app)[-1].size
        fill(in_app, 3)
        assert _checkpoints(in_app)[-1].size == latest  # not yet ten minutes
        monkeypatch.setattr(signer, "now_micros", lambda: start + 10 * 60_000_000)
        head = fill(in_app, 1)[0]
    assert _checkpoints(in_app)[-1].size == head.seq


def test_on_demand_checkpoint_covers_its_own_entry_and_is_idempotent(
    app: Flask, in_app: Session
) -> None:
    fill(in_app, 3)
    checkpoint = service.checkpoint_now(in_app)
    head = in_app.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).one()
    assert (head.action, head.role, checkpoint.size) == ("audit.checkpoint", "system", head.seq)
    assert signer.sign_now(in_app) is checkpoint
    _assert_genuine(app, in_app, checkpoint)


def test_unusable_frontier_is_rebuilt_from_the_entries(
    app: Flask, in_app: Session, connection: Connection
) -> None:
    fill(in_app, 4)
    first = service.checkpoint_now(in_app)
    allow_tampering(connection)
    in_app.execute(
        update(AuditCheckpoint).where(AuditCheckpoint.size == first.size).values(frontier=b"x")
    )
    fill(in_app, 5)
    _assert_genuine(app, in_app, service.checkpoint_now(in_app))


def test_a_broken_chain_is_never_signed(
    app: Flask, in_app: Session, connection: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    service.checkpoint_now(in_app)
    victim = fill(in_app, 3)[1]
    allow_tampering(connection)
    in_app.execute(
        text("UPDATE audit_log SET actor = 'someone-else' WHERE seq = :seq"), {"seq": victim.seq}
    )
    with pytest.raises(signer.LogIntegrityError) as refused:
        signer.sign_now(in_app)
    assert refused.value.seq == victim.seq
    assert "does not match its hash" in refused.value.reason
    # An append that makes a checkpoint due still succeeds; the refusal goes to the log.
    signed = len(_checkpoints(in_app))
    with audit_settings(app, audit_checkpoint_every=1):
        fill(in_app, 1)
    assert len(_checkpoints(in_app)) == signed
    assert f"seq {victim.seq}" in caplog.text
    assert "someone-else" not in caplog.text


def test_refused_on_demand_checkpoint_leaves_a_failure_entry(
    in_app: Session, connection: Connection
) -> None:
    service.checkpoint_now(in_app)  # entries it covers are vouched for; later ones checked
    victim = fill(in_app, 2)[0]
    allow_tampering(connection)
    in_app.execute(
        text("UPDATE audit_log SET fields = :fields WHERE seq = :seq"),
        {"fields": '["narrative"]', "seq": victim.seq},
    )
    with pytest.raises(signer.LogIntegrityError):
        service.checkpoint_now(in_app)
    head = in_app.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).one()
    assert (head.action, head.outcome) == ("audit.checkpoint", "failure")


def test_without_a_signing_key_appends_still_work(
    app: Flask, in_app: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing() -> Any:
        raise KeyringError("no audit signing key")

    monkeypatch.setattr(keys.key_file(), "get", missing)
    signed = len(_checkpoints(in_app))
    with audit_settings(app, audit_checkpoint_every=1):
        fill(in_app, 2)
    assert len(_checkpoints(in_app)) == signed


def test_checkpoints_cannot_be_changed_through_the_orm(in_app: Session) -> None:
    checkpoint = service.checkpoint_now(in_app)
    checkpoint.note = "forged"
    with pytest.raises(RuntimeError, match="append-only"):
        in_app.flush()


@pytest.mark.parametrize("origin", ["", "two words", "a+b", "tab\there"])
def test_origin_must_be_usable_as_a_key_name(app_config: dict[str, Any], origin: str) -> None:
    with pytest.raises(ConfigError, match="audit_origin"):
        create_app({**app_config, "audit_origin": origin})


def test_record_outside_an_application_signs_nothing(db_session: Session) -> None:
    signed = len(_checkpoints(db_session))
    audit.record(audit.AuditAction.KEYS_ROTATE, session=db_session)
    assert len(_checkpoints(db_session)) == signed
