"""The SQLite database and its -wal/-shm are readable by the service's user only."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from casework.db import make_engine


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most services run under: new files would be 0644."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("usual_umask")
def test_new_database_wal_and_shm_are_0600(tmp_path: Path) -> None:
    database = tmp_path / "casework.db"
    engine = make_engine(f"sqlite:///{database}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (v TEXT)"))
            connection.execute(text("INSERT INTO t VALUES ('x')"))
        with engine.connect() as connection:  # the WAL and its index are live while open
            assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 1
            files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
            assert all(f.exists() for f in files)
            assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        engine.dispose()


@pytest.mark.usefixtures("usual_umask")
def test_an_existing_readable_database_is_tightened(tmp_path: Path) -> None:
    database = tmp_path / "casework.db"
    for name in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        name.touch()
        name.chmod(0o644)
    make_engine(f"sqlite:///{database}").dispose()
    assert _mode(database) == 0o600
    assert _mode(Path(f"{database}-wal")) == 0o600
    assert _mode(Path(f"{database}-shm")) == 0o600
