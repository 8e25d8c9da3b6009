"""Shared fixtures of the client's tests: a fast KDF cost and an unlocked replica."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sync_harness import SyncServer, running_server, server_has_sync

from casework_sync.replica import REPLICA_FILE, Replica


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[Replica]:
    store = Replica(tmp_path / REPLICA_FILE, secrets.token_bytes(32))
    yield store
    store.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncServer]:
    """One casework server for the session, with caseworkers and a supervisor."""
    if not server_has_sync():
        pytest.skip("this server has no sync API")
    with running_server(tmp_path_factory.mktemp("server")) as running:
        running.add_staff(
            **{f"cw{n}": "caseworker" for n in range(1, 13)},
            **{f"sup{n}": "supervisor" for n in range(1, 3)},
        )
        yield running
