"""The migrated schema equals the models, and migrations run down and up again."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine, make_url

from casework import migrate
from casework.db import Base, make_engine
from casework.models import import_all_models


@pytest.fixture
def scratch_engine(database_url: str, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of the backend under test, dropped afterwards."""
    if not database_url.startswith("postgresql"):
        engine = make_engine(f"sqlite:///{tmp_path / 'scratch.db'}")
        yield engine
        engine.dispose()
        return
    name = f"casework_mig_{uuid.uuid4().hex[:10]}"
    admin = make_engine(database_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(database_url).set(database=name).render_as_string(False))
    yield engine
    engine.dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}"'))
    admin.dispose()


def _drift(engine: Engine) -> list[object]:
    import_all_models()
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_migrated_schema_equals_models(scratch_engine: Engine) -> None:
    migrate.upgrade(scratch_engine)
    assert _drift(scratch_engine) == []
    with scratch_engine.connect() as connection:
        assert migrate.is_at_head(connection)


def test_downgrade_to_base_then_upgrade(scratch_engine: Engine) -> None:
    migrate.upgrade(scratch_engine)
    migrate.downgrade(scratch_engine, "base")
    tables = set(inspect(scratch_engine).get_table_names()) - {"alembic_version"}
    assert tables == set()
    migrate.upgrade(scratch_engine)
    assert _drift(scratch_engine) == []


def test_postgres_run_is_really_postgres(database_url: str, engine: Engine) -> None:
    """Guards CI: with CASEWORK_TEST_DATABASE_URL set, the suite must hit PostgreSQL."""
    if os.environ.get("CASEWORK_TEST_DATABASE_URL"):
        assert engine.dialect.name == "postgresql"
    else:
        assert engine.dialect.name == "sqlite"


def _case_indexes(engine: Engine) -> dict[str, list[str]]:
    """The plain indexes of ``cases`` (PostgreSQL also lists its unique constraints)."""
    return {
        str(index["name"]): [str(c) for c in index["column_names"]]
        for index in inspect(engine).get_indexes("cases")
        if str(index["name"]).startswith("ix_")
    }


_PAGE_IDS = (
    "SELECT id FROM cases WHERE office_code = 'nbo' AND erased_at IS NULL"
    " ORDER BY created_at DESC, id DESC LIMIT 51"
)


def test_0022_orders_a_list_page_by_the_index_then_downgrades(scratch_engine: Engine) -> None:
    """Migration 0022 replaces (office_code, created_at) by (office_code, created_at, id):
    a list page's ids come off the index in order, with no sort of a run of equal times."""
    migrate.upgrade(scratch_engine, "0021_audit_hash_unique_dropped")
    assert _case_indexes(scratch_engine) == {
        "ix_cases_office_code_created_at": ["office_code", "created_at"]
    }
    migrate.upgrade(scratch_engine, "0022_case_page_index")
    assert _case_indexes(scratch_engine) == {
        "ix_cases_office_code_created_at_id": ["office_code", "created_at", "id"]
    }
    if scratch_engine.dialect.name == "sqlite":
        with scratch_engine.connect() as connection:
            plan = " ".join(
                str(row[-1]) for row in connection.execute(text(f"EXPLAIN QUERY PLAN {_PAGE_IDS}"))
            )
        assert "ix_cases_office_code_created_at_id" in plan
        assert "TEMP B-TREE" not in plan
    migrate.downgrade(scratch_engine, "0021_audit_hash_unique_dropped")
    assert _case_indexes(scratch_engine) == {
        "ix_cases_office_code_created_at": ["office_code", "created_at"]
    }
