"""The identity API as documented: portable patterns, whole-value matches, problem+json errors.

Regression tests for faults the OpenAPI fuzzer (tests/test_fuzz.py) found.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from marshmallow import ValidationError

from casework.api import Pattern
from casework.errors import PROBLEM_MIME
from tests.auth.helpers import TEST_PASSWORD


@pytest.fixture(scope="module")
def document(app: Flask) -> dict[str, Any]:
    found: dict[str, Any] = app.test_client().get("/api/v1/openapi.json").get_json()
    return found


@pytest.mark.parametrize("prefix", ["/api/v1/auth/", "/api/v1/users"])
def test_errors_are_documented_as_problem_json(document: dict[str, Any], prefix: str) -> None:
    """They were documented as application/json, which no error answer carries."""
    checked = 0
    for path, item in document["paths"].items():
        if not path.startswith(prefix):
            continue
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if status != "default" and int(status) >= 400:
                    assert list(response["content"]) == [PROBLEM_MIME], (method, path, status)
                    checked += 1
    assert checked


def test_username_pattern_means_the_same_to_clients(document: dict[str, Any]) -> None:
    """OpenAPI patterns are ECMA-262, where Python's ``\\Z`` is not an anchor."""
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    username = document["components"]["schemas"]["UserCreate"]["properties"]["username"]
    validator = jsonschema_rs.validator_for(username)
    assert validator.is_valid("amina.k")
    assert not validator.is_valid("amina.k\n")
    assert not validator.is_valid("-amina")


def test_pattern_matches_the_whole_value() -> None:
    pattern = Pattern(r"^[a-z]{3}$", error="Three letters.")
    assert pattern("abc") == "abc"
    for value in ("abc\n", "abcd", "ab", 123):
        with pytest.raises(ValidationError, match="Three letters"):
            pattern(value)


def test_a_username_with_a_trailing_newline_is_refused(
    client: FlaskClient, make_user: Any, login_headers: Any
) -> None:
    admin = login_headers(make_user("admin"))
    body = {"username": "amina.k\n", "password": TEST_PASSWORD, "role": "auditor"}
    response = client.post("/api/v1/users", json=body, headers=admin)
    assert response.status_code == 422
    assert "username" in response.get_json()["errors"]["json"]


@pytest.mark.parametrize("query", ["role=admin", "=", "limit=5&page=2"])
def test_unknown_query_parameters_are_refused(
    client: FlaskClient, make_user: Any, login_headers: Any, query: str
) -> None:
    """They were dropped silently; every input schema refuses what it does not know."""
    admin = login_headers(make_user("admin"))
    response = client.get(f"/api/v1/users?{query}", headers=admin)
    assert response.status_code == 422
    assert response.mimetype == PROBLEM_MIME
