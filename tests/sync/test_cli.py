"""``casework sync backfill``: cases written in bulk reach the change feed, once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import func, select

from casework.cases.service import bulk_register
from casework.cli import main
from casework.db import get_db
from casework.security.app import holder
from casework.security.case_keys import attach_keyring
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
