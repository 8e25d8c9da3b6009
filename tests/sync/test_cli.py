"""``casework sync backfill``: cases written in bulk reach the change feed, once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import func, select

from casework.audit.models import AuditEntry
from casework.cases.models import Case
from casework.cases.service import bulk_register
from casework.cli import main
from casework.db import get_db
from casework.security.app import holder
from casework.security.case_keys import attach_keyring
from casework.sync import feed
from casework.sync.models import FeedEntry
from tests.cases.scratch import Scratch, scratch_service
from tests.sync.conftest import household
from tests.sync.scratch_sync import apply, server_pairs, signed_in_device

OFFICE = "sync-b1"


@pytest.fixture
def scratch(database_url: str, tmp_path: Path) -> Iterator[Scratch]:
    with scratch_service(database_url, tmp_path) as service:
        service.add_office(OFFICE)
        yield service


def backfill(scratch: Scratch) -> str:
    result = CliRunner().invoke(
        main, ["sync", "backfill"], obj=ScriptInfo(create_app=lambda: scratch.app)
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_backfill_publishes_bulk_cases_once(scratch: Scratch) -> None:
    with get_db(scratch.app).session_factory() as session:
        attach_keyring(session, holder(scratch.app).get())
        bulk_register(session, OFFICE, [household() for _ in range(3)], audit_each=False)
        session.commit()
    device = signed_in_device(scratch, OFFICE)
    empty = device.pull().get_json()
    assert empty["changes"] == []
    assert empty["checkpoint"]["count"] == 0

    assert "published 3 cases" in backfill(scratch)
    assert "published 0 cases" in backfill(scratch)  # idempotent

    with get_db(scratch.app).session_factory() as session:
        assert session.scalar(select(func.count()).select_from(FeedEntry)) == 3
    page = device.pull().get_json()
    replica: dict[str, int] = {}
    apply(replica, page["changes"])
    assert replica == server_pairs(scratch, OFFICE)
    assert page["checkpoint"]["count"] == 3
    assert all(change["case"]["members"] for change in page["changes"])


def test_backfill_records_each_case_it_decrypts(scratch: Scratch) -> None:
    """The system decrypted each case to seal its snapshot: one ``sync.backfill`` entry per
    case, naming the system and the case (field names only), none on a second run."""
    with get_db(scratch.app).session_factory() as session:
        attach_keyring(session, holder(scratch.app).get())
        bulk_register(session, OFFICE, [household() for _ in range(2)], audit_each=False)
        session.commit()
        references = set(session.scalars(select(Case.reference)))
    backfill(scratch)
    backfill(scratch)
    with get_db(scratch.app).session_factory() as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "sync.backfill")
        ).all()
    assert sorted(entry.target for entry in entries) == sorted(references)
    assert {(entry.actor, entry.role, entry.device) for entry in entries} == {
        (None, "system", None)
    }
    assert {tuple(json.loads(entry.fields)) for entry in entries} == {feed.SNAPSHOT_FIELDS}
    assert {entry.outcome for entry in entries} == {"success"}
