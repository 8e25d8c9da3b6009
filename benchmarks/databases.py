"""The databases a run measures against: embedded SQLite, and a throw-away PostgreSQL one.

PostgreSQL runs happen in a database created for the run and dropped after it
(even on failure), so a benchmark never writes into a database someone uses.
``BENCH_DATABASE_URL`` names the *server* (its database is only used to issue
CREATE and DROP DATABASE); it defaults to the local trust-authenticated one.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


class DatabaseUnavailable(RuntimeError):
    """A PostgreSQL server that was asked for does not answer or refuses the run."""


@dataclass(frozen=True)
class BenchDatabase:
    """Where the service under test keeps its data for one run."""

    backend: str
    url: str = ""  # empty: the service's own SQLite file in its instance folder; never reported


def postgres_url(raw: str) -> URL:
    """``raw`` with the psycopg 3 driver the service uses (plain ``postgresql://`` allowed)."""
    url = make_url(raw)
    if url.get_backend_name() != "postgresql":
        raise DatabaseUnavailable("BENCH_DATABASE_URL must name a PostgreSQL server")
    return url.set(drivername="postgresql+psycopg")


def postgres_answers(raw: str, timeout_s: float = 1.0) -> bool:
    """True when something listens on the server's host and port (no login attempted)."""
    url = postgres_url(raw)
    try:
        with socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout_s):
            return True
    except OSError:
        return False


@contextmanager
def embedded_sqlite() -> Iterator[BenchDatabase]:
    """The embedded default; the file lives in the run's temporary instance folder."""
    yield BenchDatabase(backend="sqlite")


@contextmanager
def throwaway_postgres(raw_server_url: str) -> Iterator[BenchDatabase]:
    """Create ``casework_bench_<time>_<pid>`` on the server, yield it, drop it."""
    server = postgres_url(raw_server_url)
    name = f"casework_bench_{int(time.time())}_{os.getpid()}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", hide_parameters=True)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        raise DatabaseUnavailable(
            f"cannot create a throw-away database on the PostgreSQL server ({type(exc).__name__})"
        ) from None
    try:
        yield BenchDatabase(
            backend="postgresql",
            url=server.set(database=name).render_as_string(hide_password=False),
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
