"""Group commit: batching, release on durability, failure handed to every waiter; read requests
append their entries through it, writes in their own transaction."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from casework import db
from casework.audit import service, signer, tree
from casework.audit.appender import AppendFailed, GroupCommit
from casework.audit.models import AuditEntry
from tests.audit.helpers import audit_settings, fill, system_read
from tests.conftest import principal_headers

AUDITOR = principal_headers("auditor", user_id="u-auditor")


def test_concurrent_appends_are_batched_and_each_released_once_written() -> None:
    written: list[list[int]] = []
    gate = threading.Event()

    def write(items: list[int]) -> None:
        gate.wait(5)  # the first batch holds the others back, so they pile up
        written.append(list(items))

    committer: GroupCommit[int] = GroupCommit(write, batch_size=100)
    done: list[int] = []

    def worker(n: int) -> None:
        committer.append([n])
        assert any(n in batch for batch in written)  # released only after its batch
        done.append(n)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    gate.set()
    for thread in threads:
        thread.join(10)
    assert sorted(done) == list(range(20))
    assert sorted(n for batch in written for n in batch) == list(range(20))
    assert len(written) < 20  # entries that waited were written together
    assert committer.items == 20


def test_a_batch_never_exceeds_its_size_nor_splits_a_request() -> None:
    written: list[list[str]] = []
    gate = threading.Event()

    def write(items: list[str]) -> None:
        gate.wait(5)
        written.append(items)

    committer: GroupCommit[str] = GroupCommit(write, batch_size=4)
    requests = [[f"{n}-{i}" for i in range(3)] for n in range(6)]
    threads = [threading.Thread(target=committer.append, args=(r,)) for r in requests]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    gate.set()
    for thread in threads:
        thread.join(10)
    assert all(len(batch) <= 4 or len(batch) == 3 for batch in written)
    for batch in written:
        owners = [item.split("-")[0] for item in batch]
        assert all(owners.count(owner) == 3 for owner in owners)  # whole requests only


def test_a_failed_batch_fails_every_request_it_carried() -> None:
    def write(items: list[int]) -> None:
        raise RuntimeError("disk full")

    committer: GroupCommit[int] = GroupCommit(write)
    with pytest.raises(AppendFailed):
        committer.append([1])
    assert committer.batches == 1


def test_max_wait_lets_a_batch_fill() -> None:
    batches: list[list[int]] = []
    committer: GroupCommit[int] = GroupCommit(batches.append, batch_size=8, max_wait=0.3)
    threads = [threading.Thread(target=committer.append, args=([n],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(n for b in batches for n in b) == list(range(8))
    assert len(batches) <= 2


def test_a_filling_leader_stops_waiting_once_the_expected_requests_are_back() -> None:
    """After a batch of four, the next leader waits for four, not for max_wait."""
    batches: list[list[int]] = []
    committer: GroupCommit[int] = GroupCommit(batches.append, batch_size=512, max_wait=2.0)

    def round_of_four(first: int) -> float:
        started = time.monotonic()
        threads = [
            threading.Thread(target=committer.append, args=([n],)) for n in range(first, first + 4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        return time.monotonic() - started

    round_of_four(0)  # nothing known yet: the leader waits up to max_wait
    assert round_of_four(4) < 1.0
    assert sorted(n for b in batches for n in b) == list(range(8))
    assert len(batches[-1]) == 4


# --- Through the application. ---


def _count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEntry)) or 0


def test_a_read_request_appends_by_group_commit_before_its_response(
    app: Flask, client: FlaskClient, db_session: Session
) -> None:
    committer = service.group_commit(app)
    before_batches, before = committer.batches, _count(db_session)
    response = client.get("/api/v1/audit/events", headers=AUDITOR)
    assert response.status_code == 200
    assert committer.batches == before_batches + 1
    assert _count(db_session) == before + 1
    entry = db_session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).one()
    assert entry.action == "audit.read"
    assert entry.request_id == response.headers["X-Request-ID"]


def test_a_failed_batch_turns_the_read_into_a_500(
    app: Flask, client: FlaskClient, db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(items: list[Any]) -> None:
        raise RuntimeError("the log's disk is full")

    monkeypatch.setattr(service.group_commit(app), "_write", broken)
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)  # answer as in production
    before = _count(db_session)
    response = client.get("/api/v1/audit/events", headers=AUDITOR)
    assert response.status_code == 500
    assert "items" not in (response.get_json() or {})  # no data without its entry
    assert _count(db_session) == before


def test_a_write_keeps_its_entry_in_its_own_transaction(
    app: Flask, client: FlaskClient, db_session: Session
) -> None:
    committer = service.group_commit(app)
    before_batches = committer.batches
    response = client.post("/api/v1/audit/checkpoints", headers=AUDITOR)
    assert response.status_code == 201
    assert committer.batches == before_batches  # not through the group committer
    entry = db_session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).one()
    assert entry.action == "audit.checkpoint"


def test_request_modes(app: Flask) -> None:
    with app.test_request_context("/api/v1/audit/events", method="GET"):
        assert db.is_read_mode(db.session())
    with app.test_request_context("/api/v1/audit/checkpoints", method="POST"):
        assert not db.is_read_mode(db.session())
    with app.test_request_context("/api/v1/cases/search", method="POST"):
        assert db.is_read_mode(db.session())  # marked @db.reads_only


def test_a_read_session_that_writes_turns_writer_despite_a_stale_snapshot(tmp_path: Any) -> None:
    """SQLite: a deferred transaction that writes after another connection committed would
    fail at once (stale snapshot); the read session ends its snapshot and takes the write
    lock before its first change instead."""
    from sqlalchemy import Column, Integer, MetaData, Table, insert, text
    from sqlalchemy.orm import Session as OrmSession

    engine = db.make_engine(f"sqlite:///{tmp_path / 'modes.db'}")
    metadata = MetaData()
    table = Table("t", metadata, Column("id", Integer, primary_key=True))
    metadata.create_all(engine)
    reader = OrmSession(engine)
    reader.info[db.MODE] = db.READ
    reader.connection(execution_options={db.READ_ONLY: True})
    assert reader.execute(text("SELECT count(*) FROM t")).scalar() == 0  # snapshot taken
    with engine.begin() as other:  # another writer commits meanwhile
        other.execute(insert(table).values(id=1))
    reader.execute(insert(table).values(id=2))  # would raise "database is locked" unupgraded
    assert reader.info[db.MODE] == db.WRITE
    reader.commit()
    reader.close()
    with engine.connect() as check:
        assert check.execute(text("SELECT count(*) FROM t")).scalar() == 2
    engine.dispose()


# --- The batch's own transaction (a Core connection, no session). ---


def test_a_batch_the_database_refuses_fails_as_its_error_and_the_next_one_writes(
    app: Flask, client: FlaskClient, db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing INSERT fails every request of its batch with the database's error (as
    SQLAlchemy raises it), writes nothing, and leaves the log's lock free for the next."""
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    before = _count(db_session)
    with monkeypatch.context() as patch:
        patch.setattr(service, "_COLUMN_NAMES", service._COLUMN_NAMES + ", no_such_column")
        assert client.get("/api/v1/audit/events", headers=AUDITOR).status_code == 500
        draft = system_read()
        with app.app_context(), pytest.raises(AppendFailed) as caught:
            service.group_commit(app).append([service.prepare(draft)])
    assert isinstance(caught.value.__cause__, DBAPIError)
    assert _count(db_session) == before
    response = client.get("/api/v1/audit/events", headers=AUDITOR)
    assert response.status_code == 200
    assert _count(db_session) == before + 1


def test_a_batch_signs_a_due_checkpoint_in_its_own_transaction(
    app: Flask, db_session: Session
) -> None:
    """The checkpoint a batch makes due is signed over the batch, with the tiles."""
    with app.app_context(), audit_settings(app, audit_checkpoint_every=1):
        drafts = [entry.record for entry in fill(db_session, 3)]
        db_session.commit()
        service.write_batch(drafts)
        head = db_session.scalar(select(func.max(AuditEntry.seq)))
        latest = signer.latest_checkpoint(db_session)
        assert latest is not None
        assert latest.size == head
        assert tree.state(db_session).size == head


def _locking_begin(
    batches: list[list[int]], entered: threading.Event, lock_free: threading.Event
) -> Any:
    """A ``begin`` whose lock is held elsewhere until ``lock_free`` is set."""

    @contextmanager
    def begin() -> Iterator[Any]:
        entered.set()
        lock_free.wait(5)  # another process's batch holds the log's lock
        yield lambda items: batches.append(list(items))

    return begin


def test_entries_that_arrive_while_the_leader_waits_for_the_lock_join_its_batch() -> None:
    batches: list[list[int]] = []
    entered, lock_free = threading.Event(), threading.Event()
    committer: GroupCommit[int] = GroupCommit(begin=_locking_begin(batches, entered, lock_free))
    leader = threading.Thread(target=committer.append, args=([0],))
    leader.start()
    assert entered.wait(5)
    others = [threading.Thread(target=committer.append, args=([n],)) for n in (1, 2, 3)]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 5
    while committer._queued < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    lock_free.set()
    for thread in [leader, *others]:
        thread.join(10)
    assert batches == [[0, 1, 2, 3]]  # one lock, one commit for all four
    assert committer.batches == 1


def test_a_lock_never_had_fails_the_requests_and_the_next_one_leads() -> None:
    attempts: list[int] = []

    @contextmanager
    def begin() -> Iterator[Any]:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("database is locked")
        yield lambda items: None

    committer: GroupCommit[int] = GroupCommit(begin=begin)
    with pytest.raises(AppendFailed):
        committer.append([1])
    committer.append([2])  # the queue was emptied and the lead given up
    assert committer.batches == 2


def test_a_group_commit_writes_one_way() -> None:
    with pytest.raises(ValueError, match="not both"):
        GroupCommit()
    with pytest.raises(ValueError, match="not both"):
        GroupCommit(print, begin=lambda: nullcontext(print))
