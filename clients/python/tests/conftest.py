"""Shared fixtures of the client's tests: a fast KDF cost and an unlocked replica."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from casework_sync.replica import REPLICA_FILE, Replica


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[Replica]:
    store = Replica(tmp_path / REPLICA_FILE, secrets.token_bytes(32))
    yield store
    store.close()
