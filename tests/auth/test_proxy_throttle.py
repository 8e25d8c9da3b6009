"""Login throttling behind a reverse proxy (``trusted_proxies``, werkzeug ProxyFix).

Behind a proxy every request arrives from the proxy's address: unless its
``X-Forwarded-For`` is trusted, five bad passwords from anyone lock out everyone.
Trusted for a number of hops, the throttle keys on the forwarded client; not
trusted (the default), a header a client forges changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.middleware.proxy_fix import ProxyFix

from casework import create_app
from casework.authz.access import public
from casework.config import ConfigError
from casework.db import get_db
from casework.security.app import ensure_keyring
from tests.auth.helpers import LOGIN, TEST_PASSWORD

PROXY = "10.0.0.1"  # every request reaches the app from here
WRONG = "wrong-" + TEST_PASSWORD


@pytest.fixture
def proxied(app: Flask, app_config: dict[str, Any], db_session: Session) -> Iterator[Flask]:
    """The application behind one trusted proxy hop, on the test's transaction."""
    application = create_app({**app_config, "trusted_proxies": 1})
    application.config["TESTING"] = True
    ensure_keyring(application)
    get_db(application).session_factory = get_db(app).session_factory
    yield application
    get_db(application).engine.dispose()


def _attempt(client: FlaskClient, username: str, forwarded_for: str) -> int:
    response = client.post(
        LOGIN,
        json={"username": username, "password": WRONG},
        headers={"X-Forwarded-For": forwarded_for},
        environ_base={"REMOTE_ADDR": PROXY},
    )
    return response.status_code


def _lock_out(client: FlaskClient, forwarded_for: str | list[str]) -> None:
    """Five failures on five different accounts, so only the address counter locks."""
    addresses = forwarded_for if isinstance(forwarded_for, list) else [forwarded_for] * 5
    for index, address in enumerate(addresses):
        assert _attempt(client, f"nobody-{index}", address) == 401


def test_one_trusted_hop_throttles_the_forwarded_client(proxied: Flask) -> None:
    client = proxied.test_client()
    _lock_out(client, "203.0.113.7")
    assert _attempt(client, "nobody-x", "203.0.113.7") == 429  # the guesser is locked
    assert _attempt(client, "nobody-y", "198.51.100.20") == 401  # everyone else is not
    # A client's own X-Forwarded-For entry before the proxy's is not believed:
    assert _attempt(client, "nobody-z", "198.51.100.99, 203.0.113.7") == 429


def test_without_trusted_proxies_a_forged_header_changes_nothing(client: FlaskClient) -> None:
    forged = [f"192.0.2.{n}" for n in range(1, 6)]
    _lock_out(client, forged)  # one real address, five forged ones
    assert _attempt(client, "nobody-x", "192.0.2.200") == 429  # still the real address


def test_the_trusted_hop_sets_client_scheme_and_host(app_config: dict[str, Any]) -> None:
    application = create_app({**app_config, "trusted_proxies": 1})
    middleware = application.wsgi_app
    assert isinstance(middleware, ProxyFix)
    assert (middleware.x_for, middleware.x_proto, middleware.x_host) == (1, 1, 1)

    @application.get("/_test_where")
    def _where() -> dict[str, str]:
        return {"url": request.url, "remote": request.remote_addr or ""}

    public(_where)
    answer = (
        application.test_client()
        .get(
            "/_test_where",
            headers={
                "X-Forwarded-For": "198.51.100.99, 203.0.113.7",  # a forged entry, then nginx's
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "casework.example.org",
            },
            environ_base={"REMOTE_ADDR": PROXY},
        )
        .get_json()
    )
    assert answer == {"url": "https://casework.example.org/_test_where", "remote": "203.0.113.7"}


def test_default_trusts_no_proxy_and_a_negative_count_is_refused(
    app: Flask, app_config: dict[str, Any]
) -> None:
    assert app.config["CASEWORK"]["trusted_proxies"] == 0
    assert not isinstance(app.wsgi_app, ProxyFix)
    with pytest.raises(ConfigError, match="trusted_proxies"):
        create_app({**app_config, "trusted_proxies": -1})
