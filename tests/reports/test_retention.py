"""Retention: a policy two administrators agree on, legal holds, and the erasing run."""

from __future__ import annotations

import re
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from flask import Flask
from flask.cli import ScriptInfo
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.audit.models import AuditEntry
from casework.cases.models import Case, CaseMember, ErasureRequest
from casework.cases.service import bulk_intake
from casework.cli import main
from casework.db import get_db
from casework.errors import FourEyesRequired
from casework.reports import retention
from casework.reports.models import LegalHold, RetentionPolicy, RetentionTombstone
from casework.security.app import holder
from casework.security.case_keys import attach_keyring
from casework.security.envelope import WrappedKey, unwrap_data_key
from casework.security.models import CaseKey
from tests.cases.scratch import Scratch, scratch_service
from tests.conftest import principal_headers
from tests.reports.conftest import person

POLICY = "/api/v1/retention-policy"
OFFICE = "ret-01"
ADMIN_A = principal_headers("admin", None, "admin-a")
ADMIN_B = principal_headers("admin", None, "admin-b")
RULES = {"closed": 365, "arrived": 730}
NOW = datetime.now(UTC)


def put_policy(client: FlaskClient, headers: dict[str, str], rules: dict[str, int]) -> Any:
    version = client.get(POLICY, headers=headers).headers["ETag"]
    return client.put(POLICY, json={"rules": rules}, headers={**headers, "If-Match": version})


def approve(client: FlaskClient, headers: dict[str, str]) -> Any:
    version = client.get(POLICY, headers=headers).headers["ETag"]
    return client.post(f"{POLICY}/approve", json={}, headers={**headers, "If-Match": version})


# --- the policy ------------------------------------------------------------------------------


def test_a_policy_needs_a_proposer_and_another_approver(
    client: FlaskClient, db_session: Session
) -> None:
    first = client.get(POLICY, headers=ADMIN_A)
    assert first.status_code == 200
    assert first.get_json() == {"version": 0, "active": None, "pending": None}
    assert client.put(POLICY, json={"rules": RULES}, headers=ADMIN_A).status_code == 428
    stale = client.put(POLICY, json={"rules": RULES}, headers={**ADMIN_A, "If-Match": '"v9"'})
    assert stale.status_code == 412
    proposed = put_policy(client, ADMIN_A, RULES)
    assert proposed.status_code == 200
    body = proposed.get_json()
    assert body["pending"]["rules"] == RULES
    assert body["pending"]["proposed_by"] == "admin-a"
    assert body["active"] is None
    own = approve(client, ADMIN_A)
    assert own.status_code == 409
    assert own.get_json()["type"] == "urn:casework:problem:four-eyes-required"
    approved = approve(client, ADMIN_B)
    assert approved.status_code == 200
    active = approved.get_json()["active"]
    assert (active["proposed_by"], active["approved_by"]) == ("admin-a", "admin-b")
    assert approved.get_json()["pending"] is None
    assert approved.headers["ETag"] == f'"v{approved.get_json()["version"]}"'
    assert approve(client, ADMIN_B).get_json()["type"] == "urn:casework:problem:nothing-to-approve"
    actions = db_session.scalars(
        select(AuditEntry.action).where(AuditEntry.target == "retention-policy")
    ).all()
    assert actions == ["retention.propose", "retention.approve"]


@pytest.mark.parametrize(
    "rules",
    [{}, {"closed": 0}, {"closed": "365"}, {"open": 10}, {"closed": True}],
)
def test_invalid_rules_are_refused(client: FlaskClient, rules: dict[str, Any]) -> None:
    assert put_policy(client, ADMIN_A, rules).status_code == 422


def test_configuration_only_proposes_two_administrators_still_decide(db_session: Session) -> None:
    first = retention.parse_first_proposal(["closed=1825", "handed_off=365"])
    document = retention.policy_document(db_session, first)
    assert document.version == 0
    assert document.pending is not None
    assert document.pending.proposed_by is None
    admin_a, admin_b = (
        retention.Principal.for_role("admin", user_id=u, office=None)
        for u in ("admin-a", "admin-b")
    )
    adopted = retention.approve(db_session, admin_a, document)
    assert (adopted.status, adopted.proposed_by) == ("pending", "admin-a")
    with pytest.raises(FourEyesRequired):
        retention.approve(db_session, admin_a, retention.policy_document(db_session, first))
    active = retention.approve(db_session, admin_b, retention.policy_document(db_session, first))
    assert (active.status, active.approved_by) == ("active", "admin-b")
    assert active.rules == {"closed": 1825, "handed_off": 365}
    with pytest.raises(ValueError, match="state=days"):
        retention.parse_first_proposal(["closed:10"])


# --- legal holds -----------------------------------------------------------------------------


@pytest.fixture
def office(make_office: Any) -> str:
    return make_office(OFFICE, "Retention office")


@pytest.fixture
def make_case(app: Flask, db_session: Session, office: str) -> Callable[..., Case]:
    """``make_case(stage, days_ago, resettlement_stage=..., canary=...)``: a flushed case."""
    attach_keyring(db_session, holder(app).get())

    def make(stage: str = "intake", days_ago: int = 0, **columns: Any) -> Case:
        canary = columns.pop("canary", f"Canary{uuid.uuid4().hex[:10]}")
        (case,) = bulk_intake(
            db_session, office, [{"members": [person(full_name=canary, narrative=canary)]}]
        )
        case.stage = stage
        case.updated_at = NOW - timedelta(days=days_ago)
        case.created_at = case.updated_at - timedelta(days=30)
        for name, value in columns.items():
            setattr(case, name, value)
        db_session.flush()
        return case

    return make


def test_a_supervisor_puts_a_case_on_legal_hold(
    client: FlaskClient, make_case: Callable[..., Case], db_session: Session
) -> None:
    case = make_case("closed", 900)
    path = f"/api/v1/cases/{case.reference}/legal-hold"
    supervisor = principal_headers("supervisor", OFFICE, "sup-1")
    body = {"hold": True, "reason": "Court order 12/2026."}
    assert client.put(path, json=body, headers=supervisor).status_code == 428
    caseworker = principal_headers("caseworker", OFFICE, "cw-1")
    assert (
        client.put(path, json=body, headers={**caseworker, "If-Match": '"v1"'}).status_code == 403
    )
    outsider = principal_headers("supervisor", "elsewhere", "sup-2")
    assert client.put(path, json=body, headers={**outsider, "If-Match": '"v1"'}).status_code == 404
    missing = client.put(path, json={"hold": True}, headers={**supervisor, "If-Match": '"v1"'})
    assert missing.status_code == 422
    held = client.put(path, json=body, headers={**supervisor, "If-Match": '"v1"'})
    assert held.status_code == 200
    assert held.get_json()["hold"] is True
    assert held.get_json()["reason"] == body["reason"]
    assert held.headers["ETag"] == '"v2"'
    (entry,) = db_session.scalars(
        select(AuditEntry).where(
            AuditEntry.target == case.reference, AuditEntry.action == "case.legal_hold"
        )
    ).all()
    assert body["reason"] not in entry.fields
    lifted = client.put(path, json={"hold": False}, headers={**supervisor, "If-Match": '"v2"'})
    assert lifted.get_json()["hold"] is False


# --- the run ---------------------------------------------------------------------------------


def active_policy(session: Session, rules: dict[str, int] = RULES) -> RetentionPolicy:
    policy = RetentionPolicy(rules=rules, proposed_by="admin-a")
    session.add(policy)
    session.flush()
    admin_b = retention.Principal.for_role("admin", user_id="admin-b", office=None)
    return retention.approve(session, admin_b, retention.policy_document(session, {}))


@pytest.fixture
def estate(make_case: Callable[..., Case], db_session: Session) -> dict[str, Case]:
    """Cases due and not due under RULES (closed after 365 days, arrived after 730)."""
    cases = {
        "closed_old": make_case("closed", 400),
        "closed_new": make_case("closed", 10),
        "arrived_old": make_case("resettlement", 800, resettlement_stage="arrived"),
        "arrived_new": make_case("resettlement", 700, resettlement_stage="arrived"),
        "handed_off_old": make_case("handed_off", 2000),
        "intake_old": make_case("intake", 3000),
        "held": make_case("closed", 900),
    }
    hold = LegalHold(case_id=cases["held"].id, is_held=True, changed_by="sup-1")
    hold.reason = "Pending litigation."
    db_session.add(hold)
    db_session.flush()
    return cases


def test_a_dry_run_lists_exactly_the_cases_due_and_erases_nothing(
    db_session: Session, estate: dict[str, Case]
) -> None:
    active_policy(db_session)
    due = retention.run(db_session, dry_run=True)
    assert due == sorted([estate["closed_old"].reference, estate["arrived_old"].reference])
    assert all(case.erased_at is None for case in estate.values())


def test_a_run_erases_exactly_those_through_a_two_person_erasure(
    app: Flask, db_session: Session, estate: dict[str, Case]
) -> None:
    policy = active_policy(db_session)
    with app.app_context():
        erased = retention.run(db_session, dry_run=False)
    due = {estate["closed_old"].reference, estate["arrived_old"].reference}
    assert set(erased) == due
    for name, case in estate.items():
        assert (case.erased_at is not None) == (case.reference in due), name
    for reference in due:
        case = db_session.scalars(select(Case).where(Case.reference == reference)).one()
        assert db_session.get(CaseKey, case.id) is None
        assert not db_session.scalars(select(CaseMember).where(CaseMember.case_id == case.id)).all()
        (request,) = db_session.scalars(
            select(ErasureRequest).where(ErasureRequest.case_id == case.id)
        ).all()
        assert (request.requested_by, request.decided_by) == ("admin-a", "admin-b")
        assert request.status == "approved"
        tombstone = db_session.get(RetentionTombstone, reference)
        assert tombstone is not None
        assert tombstone.office_code == OFFICE
        assert tombstone.policy_id == policy.id
        assert tombstone.registered_at <= tombstone.last_changed_at <= tombstone.erased_at
        actions = db_session.scalars(
            select(AuditEntry.action).where(AuditEntry.target == reference)
        ).all()
        assert "retention.erase" in actions
        assert "case.shred" in actions
    assert retention.run(db_session, dry_run=True) == []


def test_a_run_without_an_approved_policy_erases_nothing(
    db_session: Session, estate: dict[str, Case]
) -> None:
    db_session.add(RetentionPolicy(rules=RULES, proposed_by="admin-a"))
    db_session.flush()
    with pytest.raises(retention.NoActivePolicy):
        retention.run(db_session, dry_run=False)
    assert all(case.erased_at is None for case in estate.values())


def test_the_command_prints_references_only(
    app: Flask, db_session: Session, estate: dict[str, Case]
) -> None:
    runner = CliRunner()
    info = ScriptInfo(create_app=lambda: app)
    refused = runner.invoke(main, ["retention", "run", "--dry-run"], obj=info)
    assert refused.exit_code == 1
    assert "No retention policy" in refused.output
    active_policy(db_session)
    result = runner.invoke(main, ["retention", "run", "--dry-run"], obj=info)
    assert result.exit_code == 0, result.output
    assert sorted(references_in(result.stdout)) == sorted(
        [estate["closed_old"].reference, estate["arrived_old"].reference]
    )


# --- end to end: real commits, a copy of the database taken before, the shred step ---------


@pytest.fixture
def scratch(database_url: str, tmp_path: Path) -> Iterator[Scratch]:
    with scratch_service(database_url, tmp_path) as service:
        yield service


def references_in(output: str) -> list[str]:
    """The case references a command printed (one a line), whatever else shares the stream."""
    return [line for line in output.split() if re.fullmatch(r"[0-9A-Z*~$=]{11}", line)]


def cli(scratch: Scratch, *args: str) -> click.testing.Result:
    result = CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: scratch.app))
    assert result.exit_code == 0, result.output
    return result


def test_retention_end_to_end_leaves_nothing_of_the_erased_cases(
    scratch: Scratch, tmp_path: Path
) -> None:
    app = scratch.app
    scratch.add_office(OFFICE)
    canaries = {name: f"Canary{name}{uuid.uuid4().hex[:8]}" for name in ("old", "held", "kept")}
    with get_db(app).session_factory() as session:
        attach_keyring(session, holder(app).get())
        cases = {}
        for name, canary in canaries.items():
            body = {"members": [person(full_name=canary, narrative=canary)]}
            (cases[name],) = bulk_intake(session, OFFICE, [body])
            cases[name].stage = "closed"
            cases[name].updated_at = NOW - timedelta(days=400 if name != "kept" else 5)
        session.commit()
        references = {name: case.reference for name, case in cases.items()}
    client = app.test_client()
    assert put_policy(client, ADMIN_A, {"closed": 365}).status_code == 200
    assert approve(client, ADMIN_B).status_code == 200
    supervisor = principal_headers("supervisor", OFFICE, "sup-1")
    hold = client.put(
        f"/api/v1/cases/{references['held']}/legal-hold",
        json={"hold": True, "reason": "Appeal pending."},
        headers={**supervisor, "If-Match": '"v1"'},
    )
    assert hold.status_code == 200
    old_copy = _copy_of_the_database(scratch, tmp_path)

    dry_run = cli(scratch, "retention", "run", "--dry-run")
    assert references_in(dry_run.stdout) == [references["old"]]
    assert references_in(cli(scratch, "retention", "run").stdout) == [references["old"]]
    cli(scratch, "keys", "shred")

    gone = client.get(f"/api/v1/cases/{references['old']}", headers=supervisor)
    assert gone.status_code == 410
    for name in ("held", "kept"):
        read = client.get(f"/api/v1/cases/{references[name]}", headers=supervisor)
        assert read.get_json()["members"][0]["full_name"] == canaries[name]
    _scan_finds_nothing(scratch, canaries["old"], references["old"])
    if old_copy is not None:
        keyring = holder(app).get()
        with sqlite3.connect(old_copy) as copy:
            rows = copy.execute("SELECT case_id, kek_id, wrapped_key FROM case_keys").fetchall()
        assert rows
        for case_id, kek_id, wrapped in rows:
            with pytest.raises(Exception):  # noqa: B017, PT011 - destroyed or unknown KEK
                unwrap_data_key(keyring, WrappedKey(kek_id, wrapped), uuid.UUID(case_id))
    auditor = principal_headers("auditor", None, "auditor-1")
    verified = client.get("/api/v1/audit/verify", headers=auditor).get_json()
    assert verified["ok"] is True, verified


def _copy_of_the_database(scratch: Scratch, tmp_path: Path) -> Path | None:
    """A file copy of the SQLite database (after a checkpoint), as a backup would be."""
    if scratch.sqlite_file is None:
        return None
    with sqlite3.connect(scratch.sqlite_file) as live:
        live.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    copy = tmp_path / "before-retention.db"
    shutil.copyfile(scratch.sqlite_file, copy)
    return copy


def _scan_finds_nothing(scratch: Scratch, canary: str, reference: str) -> None:
    """Every value of every table, as stored: no canary; the case has no key or member left."""
    needle = canary.encode()
    with get_db(scratch.app).engine.connect() as connection:
        from casework.db import Base

        for table in Base.metadata.sorted_tables:
            for row in connection.execute(select(table)):
                for value in row:
                    raw = value if isinstance(value, bytes) else str(value).encode()
                    assert needle not in raw, table.name
        case = connection.execute(
            select(Case.__table__).where(Case.__table__.c.reference == reference)
        ).one()
        assert case.erased_at is not None
        keys = connection.execute(
            select(CaseKey.__table__).where(CaseKey.__table__.c.case_id == case.id)
        ).all()
        assert not keys
    if scratch.sqlite_file is not None:
        for path in scratch.sqlite_file.parent.glob(scratch.sqlite_file.name + "*"):
            assert needle not in path.read_bytes(), path.name
