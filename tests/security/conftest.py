"""The security tests open sessions of their own sample models, without an app: they
install the session listeners that ``create_app`` installs for the service."""

import pytest

from casework.security.columns import install_session_events


@pytest.fixture(autouse=True, scope="session")
def _session_events() -> None:
    install_session_events()
