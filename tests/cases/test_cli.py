"""``casework cases seed`` and ``casework keys reindex``, on a scratch service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import func, select, text

from benchmarks.case_setup import FILTER_NEED
from casework.cases.models import BlindIndexEntry, Case
from casework.cases.schemas import IntakeIn
from casework.cases.seeding import RARE_NEED, document_numbers, synthetic_households
from casework.cli import main
from casework.db import get_db
from casework.security.app import holder
from tests.cases.scratch import Scratch, scratch_service

SEARCH = "/api/v1/cases/search"


@pytest.fixture
def scratch(database_url: str, tmp_path: Path) -> Iterator[Scratch]:
    with scratch_service(database_url, tmp_path) as service:
        yield service


def run(scratch: Scratch, *args: str) -> click.testing.Result:
    result = CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: scratch.app))
    assert result.exit_code == 0, result.output
    return result


def test_synthetic_households_are_valid_intake_bodies() -> None:
    bodies = list(synthetic_households(40, seed=3))
    for body in bodies:
        IntakeIn().load(body)
    assert bodies == list(synthetic_households(40, seed=3))


def test_one_needs_code_is_rare_enough_for_the_filter_benchmark() -> None:
    """The issue's filtered list: a code held by ~5% of cases, ~1,000 decrypted per page."""
    households = list(synthetic_households(4000, seed=5))
    share = sum(RARE_NEED in h["specific_needs"] for h in households) / len(households)
    assert 0.04 <= share <= 0.06
    assert RARE_NEED == FILTER_NEED


def test_document_numbers_follow_the_benchmark_harness_sequence() -> None:
    from benchmarks import synthetic

    numbers = document_numbers(seed=1)
    assert [next(numbers) for _ in range(50)] == synthetic.document_numbers(50, seed=1)
    searches = synthetic.document_searches(20, seed=1)
    seeded = [h["members"][0]["documents"][0] for h in synthetic_households(20, seed=1)]
    assert [(s["document_type"], s["document_number"]) for s in searches] == [
        (d["type"], d["number"]) for d in seeded
    ]


def test_seed_writes_searchable_cases_and_creates_the_office(scratch: Scratch) -> None:
    result = run(
        scratch, "cases", "seed", "--count", "7", "--office", "seed-1", "--batch-size", "3"
    )
    assert "seeded 7 cases for seed-1" in result.output
    with get_db(scratch.app).session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 7
    number = next(document_numbers(seed=1))
    client = scratch.app.test_client()
    headers = {"X-Test-Principal": "caseworker;seed-1;seed-reader"}
    found = client.post(SEARCH, json={"document_number": number}, headers=headers)
    assert len(found.get_json()["items"]) == 1


def test_seed_leaves_postgresql_vacuumed_and_analysed(scratch: Scratch) -> None:
    """A bulk load settles at once, so autovacuum does not compete with the first requests."""
    if scratch.backend != "postgresql":
        pytest.skip("SQLite keeps no statistics these lookups need")
    run(scratch, "cases", "seed", "--count", "3", "--office", "seed-2")
    with get_db(scratch.app).engine.connect() as connection:
        vacuumed, analysed = connection.execute(
            text(
                "SELECT last_vacuum, last_analyze FROM pg_stat_user_tables WHERE relname = :table"
            ),
            {"table": Case.__tablename__},
        ).one()
    assert vacuumed is not None
    assert analysed is not None


def test_keys_reindex_moves_the_indexes_to_a_new_root(scratch: Scratch) -> None:
    run(scratch, "cases", "seed", "--count", "4", "--office", "rix-1")
    result = run(scratch, "keys", "reindex", "--new-root", "--drop-old-roots", "--batch-size", "2")
    assert "under root version 2" in result.output
    keyring = holder(scratch.app).provider.load()
    assert [r.version for r in keyring.blind_index_roots] == [2]
    with get_db(scratch.app).session_factory() as session:
        versions = set(session.scalars(select(BlindIndexEntry.root_version)))
    assert versions == {2}
    number = next(document_numbers(seed=1))
    headers = {"X-Test-Principal": "caseworker;rix-1;reader"}
    found = scratch.app.test_client().post(
        SEARCH, json={"document_number": number}, headers=headers
    )
    assert len(found.get_json()["items"]) == 1


def test_scan_duplicates_raises_the_queued_cross_office_alerts(scratch: Scratch) -> None:
    from casework.cases.models import DuplicateAlert, DuplicateCheck

    client = scratch.app.test_client()
    member = {"relationship": "principal_applicant", "sex": "male", "full_name": "Scan Person"}
    body = {"members": [{**member, "documents": [{"type": "passport", "number": "SCAN01"}]}]}
    for office in ("scan-a", "scan-b"):
        run(scratch, "cases", "seed", "--count", "1", "--office", office)
        headers = {"X-Test-Principal": f"caseworker;{office};scan-worker"}
        assert client.post("/api/v1/cases", json=body, headers=headers).status_code == 201
    result = run(scratch, "cases", "scan-duplicates")
    assert "raised 1 cross-office duplicate alerts" in result.output
    with get_db(scratch.app).session_factory() as session:
        assert session.scalar(select(func.count()).select_from(DuplicateAlert)) == 1
        assert session.scalar(select(func.count()).select_from(DuplicateCheck)) == 0
