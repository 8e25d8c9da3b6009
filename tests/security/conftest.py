"""The security tests open sessions of their own sample models, without an app: they
install the session listeners that ``create_app`` installs for the service."""

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from casework.security.columns import install_session_events
from casework.security.keyring import Keyring

from .sample_models import make_engine


@pytest.fixture(autouse=True, scope="session")
def _session_events() -> None:
    install_session_events()


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate()


@pytest.fixture
def sample_engine() -> Iterator[Engine]:
    """An in-memory database of the sample models (not the service's ``engine``)."""
    engine = make_engine()
    yield engine
    engine.dispose()
