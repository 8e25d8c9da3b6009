"""``casework audit ...``: checkpoint, public key, export, verify (service and offline)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from casework.audit.models import AuditCheckpoint, AuditEntry
from casework.cli import main as casework_cli
from tests.audit.helpers import allow_tampering, fill


@pytest.fixture
def run(app: Flask, db_session: Session) -> Any:
    """Run ``casework ...`` against the test application and its rolled-back database."""
    runner = app.test_cli_runner()

    def invoke(*args: str) -> Result:
        return runner.invoke(casework_cli, list(args))

    return invoke


@pytest.fixture
def log(app: Flask, db_session: Session) -> Any:
    def append(count: int) -> list[Any]:
        with app.app_context():
            return fill(db_session, count)

    return append


def _head(session: Session) -> AuditEntry:
    return session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).one()


def _answer(result: Result) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(result.output)
    return answer


def test_checkpoint_prints_the_note_and_records_itself(
    run: Any, log: Any, db_session: Session
) -> None:
    log(5)
    result = run("audit", "checkpoint")
    assert result.exit_code == 0, result.output
    head = _head(db_session)
    assert (head.action, head.role, head.actor) == ("audit.checkpoint", "system", None)
    latest = db_session.scalars(
        select(AuditCheckpoint).order_by(AuditCheckpoint.size.desc()).limit(1)
    ).one()
    assert latest.size == head.seq
    assert result.output == latest.note


def test_public_key_matches_the_api(run: Any, client: FlaskClient) -> None:
    result = run("audit", "public-key")
    api = client.get("/api/v1/audit/public-key").get_json()
    assert result.output.strip() == api["verifier_key"]


def test_export_then_verify_offline_with_only_the_key(
    run: Any, log: Any, db_session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log(30)
    run("audit", "checkpoint")
    out = tmp_path / "audit.jsonl"
    exported = run("audit", "export", "--out", str(out))
    assert exported.exit_code == 0, exported.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    last = json.loads(out.read_text().splitlines()[-1])
    assert (last["kind"], last["action"]) == ("entry", "audit.export")
    key = run("audit", "public-key").output.strip()
    # The auditor's machine: no casework configuration at all. A configuration
    # that cannot load proves the command never loads one.
    monkeypatch.setenv("CASEWORK_NOT_A_SETTING", "1")
    offline = CliRunner().invoke(
        casework_cli, ["audit", "verify", "--from-export", str(out), "--key", key]
    )
    assert offline.exit_code == 0, offline.output
    assert _answer(offline)["ok"] is True
    assert _answer(offline)["entries"] == last["seq"]


def test_verify_the_database_then_find_the_edit(
    run: Any, log: Any, db_session: Session, connection: Connection
) -> None:
    made = log(8)
    run("audit", "checkpoint")
    result = run("audit", "verify")
    assert result.exit_code == 0, result.output
    assert _answer(result)["ok"] is True
    assert (_head(db_session).action, _head(db_session).outcome) == ("audit.verify", "success")
    allow_tampering(connection)
    db_session.execute(
        text("UPDATE audit_log SET role = 'admin' WHERE seq = :s"), {"s": made[3].seq}
    )
    result = run("audit", "verify")
    assert result.exit_code == 1
    assert _answer(result)["first_bad_seq"] == made[3].seq
    assert (_head(db_session).action, _head(db_session).outcome) == ("audit.verify", "failure")


def test_a_kept_checkpoint_exposes_a_rolled_back_export(run: Any, log: Any, tmp_path: Path) -> None:
    log(12)
    kept = tmp_path / "kept.note"
    kept.write_text(run("audit", "checkpoint").output)
    log(3)
    out = tmp_path / "audit.jsonl"
    run("audit", "export", "--out", str(out))
    lines = out.read_text().splitlines(keepends=True)
    entries = [n for n, line in enumerate(lines) if '"kind":"entry"' in line]
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(lines[: entries[5]]))  # the first five entries and their checkpoints
    key = run("audit", "public-key").output.strip()
    args = ["audit", "verify", "--from-export", str(cut), "--key", key]
    assert CliRunner().invoke(casework_cli, args).exit_code == 0  # a prefix looks whole
    result = CliRunner().invoke(casework_cli, [*args, "--checkpoint", str(kept)])
    assert result.exit_code == 1
    assert (_answer(result)["first_bad_seq"], "rollback" in _answer(result)["reason"]) == (6, True)
    # Through the service's own key (no --key) the verdict is the same.
    assert (
        run("audit", "verify", "--from-export", str(cut), "--checkpoint", str(kept)).exit_code == 1
    )


@pytest.mark.parametrize(
    "extra",
    [
        ["--key", "not-a-key"],
        ["--key", "name+00000000+AQ=="],
    ],
)
def test_bad_key_is_a_usage_error(tmp_path: Path, extra: list[str]) -> None:
    export = tmp_path / "e.jsonl"
    export.write_text("")
    result = CliRunner().invoke(
        casework_cli, ["audit", "verify", "--from-export", str(export), *extra]
    )
    assert result.exit_code == 2


def test_a_kept_checkpoint_of_another_history_is_a_fork(
    run: Any, log: Any, app: Flask, tmp_path: Path
) -> None:
    """The auditor holds a genuinely signed note of size s whose root the log no longer has."""
    from casework.audit.checkpoint import sign_checkpoint
    from casework.security.app import current_keyring

    log(6)
    note = run("audit", "checkpoint").output
    size = int(note.split("\n")[1])
    origin = app.config["CASEWORK"]["audit_origin"]
    with app.app_context():
        other = sign_checkpoint(current_keyring().signing_key, origin, origin, size, bytes(32))
    kept = tmp_path / "kept.note"
    kept.write_text(other)
    result = run("audit", "verify", "--checkpoint", str(kept))
    assert result.exit_code == 1
    assert "fork" in _answer(result)["reason"]
