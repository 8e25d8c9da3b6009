"""The offices API as documented: portable patterns, whole-value matches, problem+json errors.

Regression tests for faults the OpenAPI fuzzer (tests/test_fuzz.py) found.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from casework.errors import PROBLEM_MIME

OFFICES = "/api/v1/offices"


@pytest.fixture
def admin(make_user: Any, login_headers: Any) -> dict[str, str]:
    headers: dict[str, str] = login_headers(make_user("admin"))
    return headers


@pytest.fixture(scope="module")
def document(app: Flask) -> dict[str, Any]:
    found: dict[str, Any] = app.test_client().get("/api/v1/openapi.json").get_json()
    return found


def _operations(document: dict[str, Any], prefix: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, item in document["paths"].items()
        if path.startswith(prefix)
        for method, operation in item.items()
        if method != "parameters"
    ]


def test_errors_are_documented_as_problem_json(document: dict[str, Any]) -> None:
    """They were documented as application/json, which no error answer carries."""
    for label, operation in _operations(document, OFFICES):
        for status, response in operation["responses"].items():
            if status != "default" and int(status) >= 400:
                assert list(response["content"]) == [PROBLEM_MIME], (label, status)


@pytest.mark.parametrize("schema", ["OfficeCreate", "OfficeUpdate"])
def test_patterns_mean_the_same_to_clients(document: dict[str, Any], schema: str) -> None:
    """OpenAPI patterns are ECMA-262, where Python's ``\\Z`` is not an anchor."""
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    properties = document["components"]["schemas"][schema]["properties"]
    country = jsonschema_rs.validator_for(properties["country_code"])
    assert country.is_valid("COD")
    assert not country.is_valid("COD\n")
    assert not country.is_valid("CODE")
    if "code" in properties:
        code = jsonschema_rs.validator_for(properties["code"])
        assert code.is_valid("goma-2")
        assert not code.is_valid("Goma")


@pytest.mark.parametrize(
    "body",
    [{"code": "goma\n"}, {"country_code": "COD\n"}, {"name": "Goma\n"}],
)
def test_a_trailing_newline_is_refused(
    client: FlaskClient, admin: dict[str, str], body: dict[str, str]
) -> None:
    """Python's ``$`` matches before a final newline; values are matched whole."""
    payload = {"code": "goma", "name": "Goma field office", "country_code": "COD", **body}
    response = client.post(OFFICES, json=payload, headers=admin)
    assert response.status_code == 422
    assert response.mimetype == PROBLEM_MIME


@pytest.mark.parametrize("query", ["sort=name", "=", "limit=5&cursor=&page=2"])
def test_unknown_query_parameters_are_refused(
    client: FlaskClient, admin: dict[str, str], query: str
) -> None:
    """They were dropped silently; every input schema refuses what it does not know."""
    response = client.get(f"{OFFICES}?{query}", headers=admin)
    assert response.status_code == 422
