"""Migration 0023: on SQLite audit_log.seq becomes the rowid; entries, chain, indexes and
append-only triggers stay as they were, and the downgrade gives the BIGINT key back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from casework import migrate
from casework.audit import service
from casework.audit.encoding import GENESIS_HASH, AuditRecord
from casework.audit.models import link_of_row
from casework.audit.verify import verify_links
from casework.db import make_engine
from tests.audit.helpers import system_read

BEFORE = "0022_case_page_index"
AFTER = "0023_audit_log_rowid"


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'rowid.db'}")
    yield engine
    engine.dispose()


def _write_chain(engine: Engine, count: int) -> None:
    drafts = [
        service.prepare(
            AuditRecord(
                1,
                datetime.now(UTC),
                f"u-{n}",
                "caseworker",
                "nbo",
                None,
                "case.read",
                f"REF{n:08d}",
                ("given_name",),
                "success",
                f"{n:032x}",
            )
        )
        for n in range(count)
    ]
    with engine.begin() as connection:
        service.insert_rows(connection, service.seal(0, GENESIS_HASH, drafts))


def _rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(_ROWS))]


_ROWS = (
    "SELECT seq, at_us, actor, role, office, device, action, target, fields, outcome,"
    " request_id, prev_hash, hash FROM audit_log ORDER BY seq"
)


def _chain_verifies(rows: list[tuple[Any, ...]]) -> bool:
    key = Ed25519PrivateKey.generate().public_key()
    result, _end = verify_links(map(link_of_row, rows), [], key, "test", "test")
    return result.ok and result.entries == len(rows)


def _schema(engine: Engine) -> dict[str, Any]:
    """The table's key, indexes and triggers as SQLite stores them."""
    with engine.connect() as connection:
        objects = connection.execute(
            text("SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'audit_log'")
        ).all()
        seq_type = connection.execute(
            text("SELECT type FROM pragma_table_info('audit_log') WHERE name = 'seq'")
        ).scalar()
    return {
        "seq": seq_type,
        "indexes": sorted((n, s) for t, n, s in objects if t == "index" and s is not None),
        "auto_indexes": sorted(n for t, n, s in objects if t == "index" and s is None),
        "triggers": sorted((n, s) for t, n, s in objects if t == "trigger"),
        "pk": inspect(engine).get_pk_constraint("audit_log"),
    }


def _refuses_changes(engine: Engine) -> None:
    for statement in ("UPDATE audit_log SET actor = 'u-x'", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))


def test_seq_becomes_the_rowid_with_every_entry_unchanged_then_downgrades(
    sqlite_engine: Engine,
) -> None:
    migrate.upgrade(sqlite_engine, BEFORE)
    _write_chain(sqlite_engine, 40)
    rows, before = _rows(sqlite_engine), _schema(sqlite_engine)
    assert before["seq"] == "BIGINT"
    assert before["auto_indexes"] == ["sqlite_autoindex_audit_log_1"]  # the second B-tree

    migrate.upgrade(sqlite_engine, AFTER)
    after = _schema(sqlite_engine)
    assert after["seq"] == "INTEGER"
    assert after["auto_indexes"] == []  # seq is the rowid
    assert {k: v for k, v in after.items() if k not in ("seq", "auto_indexes")} == {
        k: v for k, v in before.items() if k not in ("seq", "auto_indexes")
    }
    assert _rows(sqlite_engine) == rows
    assert _chain_verifies(rows)
    with sqlite_engine.connect() as connection:
        assert (
            connection.execute(text("SELECT count(*) FROM audit_log WHERE rowid = seq")).scalar()
            == 40
        )
    _refuses_changes(sqlite_engine)
    _write_chain_after(sqlite_engine, rows)

    migrate.downgrade(sqlite_engine, BEFORE)
    assert _schema(sqlite_engine) == before
    assert _rows(sqlite_engine)[:40] == rows
    assert _chain_verifies(_rows(sqlite_engine))
    _refuses_changes(sqlite_engine)


def _write_chain_after(engine: Engine, rows: list[tuple[Any, ...]]) -> None:
    """An append on the rebuilt table continues the chain."""
    draft = service.prepare(system_read())
    with engine.begin() as connection:
        service.insert_rows(connection, service.seal(rows[-1][0], rows[-1][12], [draft]))
    assert _chain_verifies(_rows(engine))


def test_postgresql_keeps_a_bigint_key(database_url: str, engine: Engine) -> None:
    """The migration changes nothing on PostgreSQL (its key is a plain BIGINT index)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    column = next(c for c in inspect(engine).get_columns("audit_log") if c["name"] == "seq")
    assert column["type"].__class__.__name__ == "BIGINT"
