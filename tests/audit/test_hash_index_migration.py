"""Migration 0021: the entry hash loses its unique index; entries and append-only triggers stay."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from casework import migrate
from casework.db import make_engine

BEFORE = "0020_case_key_index"
ROW = (
    "INSERT INTO audit_log (seq, at_us, actor, role, office, device, action, target, fields,"
    " outcome, request_id, prev_hash, hash) VALUES (:seq, 1, 'u-1', 'caseworker', 'nbo', NULL,"
    " 'case.read', 'C-1', '[]', 'success', NULL, :prev, :hash)"
)


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'migrate.db'}")
    yield engine
    engine.dispose()


def _unique_columns(engine: Engine) -> list[list[str]]:
    return [list(c["column_names"]) for c in inspect(engine).get_unique_constraints("audit_log")]


def _indexed_columns(engine: Engine) -> set[str]:
    return {c for index in inspect(engine).get_indexes("audit_log") for c in index["column_names"]}


def test_upgrade_keeps_entries_filter_indexes_and_triggers_then_downgrades(
    sqlite_engine: Engine,
) -> None:
    migrate.upgrade(sqlite_engine, BEFORE)
    with sqlite_engine.begin() as connection:
        connection.execute(text(ROW), {"seq": 1, "prev": bytes(32), "hash": b"\x01" * 32})
    assert _unique_columns(sqlite_engine) == [["hash"]]

    migrate.upgrade(sqlite_engine)
    assert _unique_columns(sqlite_engine) == []
    assert _indexed_columns(sqlite_engine) == {"at_us", "actor", "action", "target", "outcome"}
    with sqlite_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM audit_log")).scalar() == 1
    for statement in ("UPDATE audit_log SET actor = 'u-2'", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="append-only"), sqlite_engine.begin() as connection:
            connection.execute(text(statement))

    migrate.downgrade(sqlite_engine, BEFORE)
    assert _unique_columns(sqlite_engine) == [["hash"]]
    with pytest.raises(Exception, match="append-only"), sqlite_engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log"))
    with sqlite_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM audit_log")).scalar() == 1
