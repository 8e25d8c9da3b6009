"""The fast paths keep the slow paths' guarantees: same ciphertext rules, same log, same locks.

Covers the bulk registration used by seeding, batched access-log appends, the
key prefetch, the framed associated data, and SQLite's writer queue.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from casework.audit.encoding import GENESIS_HASH, entry_hash
from casework.audit.models import AuditEntry, chained_from_row
from casework.audit.service import record, record_many
from casework.cases import indexes
from casework.cases.models import BlindIndexEntry, Case, CaseMember
from casework.cases.seeding import synthetic_households
from casework.cases.service import bulk_intake, bulk_register
from casework.db import make_engine
from casework.security.app import holder
from casework.security.case_keys import attach_keyring, data_key_cache
from casework.security.envelope import FieldContext, field_aad_ids, field_aad_prefix
from tests.cases.conftest import CASES, audit_entries
from tests.conftest import principal_headers


@pytest.fixture
def keyed_session(app: Any, db_session: Session) -> Session:
    """The test's session with the service keyring attached."""
    attach_keyring(db_session, holder(app).get())
    return db_session


@pytest.fixture
def office(make_office: Any) -> str:
    return make_office("perf-01", "Perf office")


def _households(count: int, seed: int = 5) -> list[dict[str, Any]]:
    return list(synthetic_households(count, seed=seed))


def test_bulk_registered_cases_read_back_through_the_api(
    client: FlaskClient, keyed_session: Session, office: str
) -> None:
    """Every field written without the ORM decrypts through the model (same AAD, padding)."""
    households = _households(3)
    references = bulk_register(keyed_session, office, households)
    headers = principal_headers("caseworker", office, "perf-worker")
    for reference, sent in zip(references, households, strict=True):
        case = client.get(f"{CASES}/{reference}", headers=headers).get_json()
        assert case["specific_needs"] == sent["specific_needs"]
        got = case["members"]
        assert [m["full_name"] for m in got] == [m["full_name"] for m in sent["members"]]
        assert [m["documents"] for m in got] == [m["documents"] for m in sent["members"]]
        assert [m["phone"] for m in got] == [m["phone"] for m in sent["members"]]
        children = [m for m in got if m["relationship"] == "child"]
        assert all(child["mother"] == got[0]["id"] for child in children)


def test_bulk_registered_cases_are_found_by_their_document(
    client: FlaskClient, keyed_session: Session, office: str
) -> None:
    households = _households(2, seed=9)
    references = bulk_register(keyed_session, office, households)
    document = households[1]["members"][0]["documents"][0]
    body = {"document_type": document["type"], "document_number": document["number"]}
    headers = principal_headers("caseworker", office, "perf-worker")
    found = client.post(f"{CASES}/search", json=body, headers=headers).get_json()["items"]
    assert [item["reference"] for item in found] == [references[1]]


def test_bulk_register_writes_the_same_index_entries_as_the_orm_path(
    keyed_session: Session, office: str
) -> None:
    (household,) = _households(1, seed=11)
    (orm_case,) = bulk_intake(keyed_session, office, [household], audit_each=False)
    keyed_session.flush()
    (reference,) = bulk_register(keyed_session, office, [household], audit_each=False)
    bulk_id = keyed_session.scalar(select(Case.id).where(Case.reference == reference))

    def entries(case_id: uuid.UUID) -> list[tuple[str, int, int]]:
        query = select(BlindIndexEntry.name, BlindIndexEntry.root_version, BlindIndexEntry.value)
        return sorted(keyed_session.execute(query.where(BlindIndexEntry.case_id == case_id)))

    assert entries(orm_case.id) == entries(bulk_id)
    assert entries(bulk_id)  # documents and names were indexed


def test_bulk_register_stores_every_attribute_as_ciphertext(
    keyed_session: Session, office: str
) -> None:
    """No plaintext and no SQL NULL in a sealed column: absent values are padded nulls too."""
    (reference,) = bulk_register(keyed_session, office, _households(1, seed=3))
    case_id = keyed_session.scalar(select(Case.id).where(Case.reference == reference))
    table = CaseMember.__table__
    sealed = [c for c in table.columns if "encrypted" in (c.comment or "")]
    rows = keyed_session.execute(select(*sealed).where(table.c.case_id == case_id)).all()
    assert rows
    for row in rows:
        for value in row:
            assert isinstance(value, bytes)
            assert value[0] == 0x01  # field format 1
            assert b"Synthetic" not in value


def test_bulk_register_records_one_entry_per_case_or_one_per_batch(
    keyed_session: Session, office: str
) -> None:
    references = bulk_register(keyed_session, office, _households(3, seed=4))
    for reference in references:
        (entry,) = audit_entries(keyed_session, target=reference, action="case.create")
        assert "members.full_name" in entry.fields
    before = keyed_session.scalar(select(func.count()).select_from(AuditEntry))
    bulk_register(keyed_session, office, _households(3, seed=6), audit_each=False)
    after = keyed_session.scalar(select(func.count()).select_from(AuditEntry))
    assert after == before + 1


def test_bulk_register_refuses_an_unknown_office(keyed_session: Session) -> None:
    from casework.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        bulk_register(keyed_session, "nowhere-99", _households(1))
    assert keyed_session.scalar(select(func.count()).select_from(Case)) == 0


def test_record_many_appends_a_chain_that_verifies(app: Any, db_session: Session) -> None:
    with app.app_context():
        first = record_many(
            _action("case.list"), ["REF-A", "REF-B", "REF-C"], fields=["stage"], session=db_session
        )
        last = record(_action("case.read"), target="REF-D", session=db_session)
    assert [e.record.seq for e in first] == list(
        range(first[0].record.seq, first[0].record.seq + 3)
    )
    assert last.record.seq == first[-1].record.seq + 1
    rows = db_session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars().all()
    prev = GENESIS_HASH
    for row in rows:
        stored = chained_from_row(row)
        assert stored.prev_hash == prev
        assert entry_hash(prev, stored.record) == stored.hash
        prev = stored.hash
    assert [row.target for row in rows[-4:]] == ["REF-A", "REF-B", "REF-C", "REF-D"]


def test_record_many_of_nothing_appends_nothing(app: Any, db_session: Session) -> None:
    with app.app_context():
        assert record_many(_action("case.list"), [], session=db_session) == []
    assert db_session.scalar(select(func.count()).select_from(AuditEntry)) == 0


def _action(value: str) -> Any:
    from casework.audit.actions import AuditAction

    return AuditAction(value)


def test_a_list_page_records_every_case_it_shows(
    client: FlaskClient, keyed_session: Session, office: str
) -> None:
    references = bulk_register(keyed_session, office, _households(4, seed=8), audit_each=False)
    headers = principal_headers("caseworker", office, "perf-worker")
    items = client.get(f"{CASES}?limit=50", headers=headers).get_json()["items"]
    assert sorted(item["reference"] for item in items) == sorted(references)
    for reference in references:
        (entry,) = audit_entries(keyed_session, target=reference, action="case.list")
        assert entry.actor == "perf-worker"


def test_prefetched_keys_need_no_select_per_case(keyed_session: Session, office: str) -> None:
    bulk_register(keyed_session, office, _households(5, seed=2), audit_each=False)
    cases = keyed_session.scalars(select(Case).where(Case.office_code == office)).all()
    held = indexes.prefetch_keys(keyed_session, (case.id for case in cases))
    assert sorted(held) == sorted(case.id for case in cases)
    statements: list[str] = []
    bind = keyed_session.connection()

    @event.listens_for(bind, "before_cursor_execute")
    def _count(_c: Any, _cur: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    try:
        needs = [case.specific_needs for case in cases]
    finally:
        event.remove(bind, "before_cursor_execute", _count)
    assert all(isinstance(n, list) for n in needs)
    assert not [s for s in statements if "case_keys" in s]
    assert data_key_cache(keyed_session).unwraps >= len(cases)


@given(
    table=st.text(min_size=1, max_size=20),
    column=st.text(min_size=1, max_size=20),
    case_id=st.uuids(),
    row_id=st.uuids(),
)
def test_framed_aad_equals_the_field_context(
    table: str, column: str, case_id: uuid.UUID, row_id: uuid.UUID
) -> None:
    try:
        expected = FieldContext(table, column, case_id, row_id).encoded
    except (TypeError, UnicodeEncodeError):
        return
    assert field_aad_prefix(table, column) + field_aad_ids(case_id, row_id) == expected


# --- SQLite's writer queue ---------------------------------------------------------------


def test_a_second_writer_in_the_same_thread_fails_after_the_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'queue.db'}", sqlite_busy_timeout_ms=200)
    with engine.connect() as first:
        first.execute(text("CREATE TABLE t (x INTEGER)"))
        first.commit()
        first.execute(text("INSERT INTO t VALUES (1)"))  # holds the write lock
        started = time.monotonic()
        with engine.connect() as second, pytest.raises(OperationalError, match="locked"):
            second.execute(text("INSERT INTO t VALUES (2)"))
        assert 0.15 < time.monotonic() - started < 5
        first.commit()
    with engine.connect() as check:
        assert check.execute(text("SELECT count(*) FROM t")).scalar() == 1
    engine.dispose()


def test_threads_wait_their_turn_and_every_write_lands(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'queue.db'}", sqlite_busy_timeout_ms=10_000)
    with engine.begin() as setup:
        setup.execute(text("CREATE TABLE t (x INTEGER)"))
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(20):
                with engine.begin() as connection:
                    count = connection.execute(text("SELECT count(*) FROM t")).scalar()
                    connection.execute(text("INSERT INTO t VALUES (:x)"), {"x": count})
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with engine.connect() as check:
        values = [row[0] for row in check.execute(text("SELECT x FROM t ORDER BY x"))]
    # Each transaction saw every earlier one: the counts it wrote are 0..119, once each.
    assert values == list(range(120))
    engine.dispose()


def test_a_failed_transaction_hands_the_queue_on(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'queue.db'}", sqlite_busy_timeout_ms=300)
    with engine.begin() as setup:
        setup.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
    with pytest.raises(OperationalError), engine.begin() as failing:
        failing.execute(text("INSERT INTO nowhere VALUES (1)"))
    with engine.begin() as after:  # would time out if the queue were still held
        after.execute(text("INSERT INTO t VALUES (1)"))
    engine.dispose()
