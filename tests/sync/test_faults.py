"""A short exactly-once fault run against a real gunicorn (the long one: make sync-faults)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cases.scratch import Scratch, scratch_service
from tests.sync.faults import run


@pytest.fixture
def scratch(database_url: str, tmp_path: Path) -> Iterator[Scratch]:
    with scratch_service(database_url, tmp_path) as service:
        yield service


def test_every_mutation_applied_exactly_once_despite_kill_9(
    scratch: Scratch, tmp_path: Path
) -> None:
    figures = run(scratch, tmp_path / "gunicorn", count=20, batch_size=10, rate=0.4, seed=3)
    assert figures["crashes"] >= 1  # the run really crashed the server
