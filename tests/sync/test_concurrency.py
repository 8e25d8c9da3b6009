"""On a service that really commits: the feed under concurrent writers, and one mutation
sent twice at once."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from casework.cases.models import Case
from casework.cases.service import bulk_intake
from casework.db import get_db
from casework.security.app import holder
from casework.security.case_keys import attach_keyring
from casework.sync import feed
from tests.cases.scratch import Scratch, scratch_service
from tests.sync.conftest import household
from tests.sync.scratch_sync import apply, server_pairs, signed_in_device
from tests.sync.signing import new_mutation

OFFICE = "sync-c1"


@pytest.fixture
def scratch(database_url: str, tmp_path: Path) -> Iterator[Scratch]:
    with scratch_service(database_url, tmp_path) as service:
        service.add_office(OFFICE)
        yield service


def _writer(scratch: Scratch, rounds: int, seed: int, errors: list[BaseException]) -> None:
    """Create or change cases; hold the transaction open a while after publishing."""
    rng = random.Random(seed)
    try:
        for _ in range(rounds):
            with get_db(scratch.app).session_factory() as session:
                attach_keyring(session, holder(scratch.app).get())
                feed.install(session)
                existing = session.scalars(
                    select(Case).where(Case.office_code == OFFICE).order_by(func.random()).limit(1)
                ).first()
                if existing is None or rng.random() < 0.5:
                    bulk_intake(session, OFFICE, [household()], audit_each=False)
                else:
                    existing.version += 1
                feed.publish(session)
                time.sleep(rng.random() * 0.02)  # commit late: the classic skipped-row window
                session.commit()
    except BaseException as error:  # reported by the test
        errors.append(error)


def test_no_change_is_skipped_or_repeated_under_concurrent_writers(scratch: Scratch) -> None:
    device = signed_in_device(scratch, OFFICE)
    errors: list[BaseException] = []
    writers = [
        threading.Thread(target=_writer, args=(scratch, 15, seed, errors)) for seed in range(3)
    ]
    for thread in writers:
        thread.start()
    replica: dict[str, int] = {}
    cursor = None
    seen: list[int] = []
    while any(thread.is_alive() for thread in writers):
        response = device.pull(cursor, 3)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        apply(replica, page["changes"])
        seen += [change["seq"] for change in page["changes"]]
        cursor = page["cursor"]
    for thread in writers:
        thread.join(timeout=60)
    assert not errors
    while True:
        page = device.pull(cursor, 50).get_json()
        apply(replica, page["changes"])
        seen += [change["seq"] for change in page["changes"]]
        cursor = page["cursor"]
        if not page["more"]:
            break
    assert seen == sorted(set(seen))  # in order, never twice
    assert replica == server_pairs(scratch, OFFICE)
    assert page["checkpoint"]["count"] == len(replica)
    assert page["checkpoint"]["checksum"] == feed.checksum_of(replica.items())


def test_the_same_mutation_twice_at_once(scratch: Scratch) -> None:
    device = signed_in_device(scratch, OFFICE)
    body = household()
    body["client_ref"] = str(uuid.uuid4())
    body["members"][0]["client_ref"] = str(uuid.uuid4())
    mutation = new_mutation(1, "create", body)
    barrier = threading.Barrier(2)
    answers: list[Any] = [None, None]

    def send(position: int) -> None:
        client = scratch.app.test_client()
        own = type(device)(client, device.device_id, device.key)
        own.token = device.token
        barrier.wait()
        answers[position] = own.push([mutation])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [a.status_code for a in answers] == [200, 200]
    statuses = sorted(a.get_json()["results"][0]["status"] for a in answers)
    assert statuses == ["applied", "duplicate"]
    assert len(server_pairs(scratch, OFFICE)) == 1
