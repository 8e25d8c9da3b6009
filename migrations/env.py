"""Alembic environment for casework: the engine comes from the caller.

``casework db upgrade`` (see casework/migrate.py) passes the application's
engine in ``config.attributes``; SQLite runs in batch mode so ALTERs work.
"""

from __future__ import annotations

from alembic import context

from casework.db import Base
from casework.models import import_all_models

import_all_models()
target_metadata = Base.metadata
engine = context.config.attributes.get("engine")
if engine is None:
    raise RuntimeError("run migrations through `casework db ...`, which supplies the engine")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
