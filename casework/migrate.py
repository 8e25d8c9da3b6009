"""Alembic, driven directly (plain SQLAlchemy 2, no Flask-SQLAlchemy).

The scripts live in the top-level ``migrations/`` folder; ``casework db`` and
``casework init`` call these functions. Upgrades go to *heads* so that two
features developed side by side never block each other's migration.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    """An Alembic config bound to ``engine`` (passed to env.py, no ini file)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "heads") -> None:
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


@functools.cache
def head_revisions() -> frozenset[str]:
    """The scripts' heads; read once per process (the scripts do not change under it)."""
    script = ScriptDirectory.from_config(alembic_config_without_engine())
    return frozenset(script.get_heads())


def current_revisions(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


def is_at_head(connection: Connection) -> bool:
    """True when the database carries exactly the scripts' head revisions."""
    return current_revisions(connection) == head_revisions()


def alembic_config_without_engine() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config
