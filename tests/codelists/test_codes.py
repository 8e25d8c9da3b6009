"""``GET /api/v1/codes``: every enumeration the API accepts, labelled in every shipped
language; and the catalogs that hold those labels and the problem titles."""

from __future__ import annotations

from typing import Any

import pytest
from babel import Locale
from babel.messages.mofile import read_mo
from flask import Flask
from flask.testing import FlaskClient

from casework import i18n
from casework.authz.permissions import ROLES
from casework.codelists import catalog
from casework.codelists.lists import _alpha2, code_lists
from casework.errors import PROBLEM_BASE, TITLES, register_problem
from tests.conftest import principal_headers

SHIPPED = i18n.LANGUAGES[1:]  # English is the source language


@pytest.fixture(scope="module")
def document(app: Flask) -> dict[str, Any]:
    return app.test_client().get("/api/v1/openapi.json").get_json()


def _enums(node: Any) -> list[list[str]]:
    """Every ``enum`` in the document, without the ``null`` of nullable fields."""
    found: list[list[str]] = []
    if isinstance(node, dict):
        if isinstance(node.get("enum"), list):
            found.append([v for v in node["enum"] if v is not None])
        for value in node.values():
            found += _enums(value)
    elif isinstance(node, list):
        for value in node:
            found += _enums(value)
    return found


def test_every_enumeration_of_the_document_is_a_code_list(document: dict[str, Any]) -> None:
    lists = [set(code_list.labels) for code_list in code_lists().values()]
    enums = _enums(document["paths"]) + _enums(document["components"]["schemas"])
    assert len(enums) > 50
    orphans = [enum for enum in enums if not any(set(enum) <= values for values in lists)]
    assert orphans == [], "add these to casework/codelists/lists.py"


@pytest.mark.parametrize("language", SHIPPED)
def test_every_label_and_title_has_a_translation(language: str) -> None:
    po = catalog.read_catalog(language)
    untranslated = [
        (context, msgid)
        for context, msgid in catalog.messages()
        if not (message := po.get(msgid, context=context)) or not message.string
    ]
    assert untranslated == [], f"translate them in {catalog.po_path(language)}"
    territories = Locale.parse(language).territories
    countries = code_lists()["countries"].labels
    assert all(_alpha2()[c] in territories for c in countries if c in _alpha2())


@pytest.mark.parametrize("language", SHIPPED)
def test_the_committed_mo_is_compiled_from_the_po(language: str) -> None:
    """The server reads the .mo; a .po edited without `casework i18n compile` fails here."""
    mo_path = catalog.po_path(language).with_suffix(".mo")
    with mo_path.open("rb") as file:
        compiled = {(m.context, m.id): m.string for m in read_mo(file) if m.id}
    source = {(m.context, m.id): m.string for m in catalog.read_catalog(language) if m.id}
    assert compiled == source, "run `casework i18n compile`"


@pytest.mark.parametrize("role", ROLES)
def test_every_signed_in_role_and_device_reads_the_lists(client: FlaskClient, role: str) -> None:
    headers = principal_headers(role, None if role in ("admin", "auditor") else "kbl")
    index = client.get("/api/v1/codes", headers=headers)
    assert index.status_code == 200
    names = [entry["name"] for entry in index.get_json()["lists"]]
    assert {"specific_needs", "stages", "document_types", "submission_categories"} <= set(names)
    assert index.get_json()["languages"] == list(i18n.LANGUAGES)


def test_anonymous_callers_get_401(client: FlaskClient) -> None:
    assert client.get("/api/v1/codes").status_code == 401
    assert client.get("/api/v1/codes/stages").status_code == 401


@pytest.mark.parametrize(
    ("accept", "language", "label"),
    [
        (None, "en", "Birth certificate"),
        ("ko", "ko", "출생 증명서"),
        ("ko-KR,ko;q=0.9,en;q=0.8", "ko", "출생 증명서"),
        ("en;q=0.9,ko;q=0.5", "en", "Birth certificate"),
        ("fr, de", "en", "Birth certificate"),
    ],
)
def test_labels_follow_accept_language(
    client: FlaskClient, accept: str | None, language: str, label: str
) -> None:
    headers = principal_headers("caseworker", "kbl")
    if accept:
        headers["Accept-Language"] = accept
    answer = client.get("/api/v1/codes/document_types", headers=headers)
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["language"] == language == answer.headers["Content-Language"]
    assert "Accept-Language" in answer.headers["Vary"]
    assert {"value": "birth_certificate", "label": label} in body["codes"]


def test_every_list_answers_in_every_language(client: FlaskClient) -> None:
    headers = principal_headers("caseworker", "kbl")
    for name, code_list in code_lists().items():
        for language in i18n.LANGUAGES:
            body = client.get(
                f"/api/v1/codes/{name}", headers={**headers, "Accept-Language": language}
            ).get_json()
            assert [c["value"] for c in body["codes"]] == list(code_list.labels)
            assert all(c["label"] for c in body["codes"])
    korean = client.get(
        "/api/v1/codes/countries", headers={**headers, "Accept-Language": "ko"}
    ).get_json()["codes"]
    assert {"value": "SYR", "label": "시리아"} in korean


def test_an_unknown_list_is_404(client: FlaskClient) -> None:
    answer = client.get("/api/v1/codes/nope", headers=principal_headers("caseworker", "kbl"))
    assert answer.status_code == 404


# --- problem titles: one per type, per language ------------------------------------------


def test_the_document_lists_every_problem_type_with_its_one_title(
    document: dict[str, Any],
) -> None:
    listed = document["components"]["schemas"]["Problem"]["x-problem-types"]
    assert listed == {PROBLEM_BASE + slug: title for slug, title in TITLES.items()}
    assert {"urn:casework:problem:precondition-failed", "urn:casework:problem:gone"} <= set(listed)


@pytest.mark.parametrize("language", SHIPPED)
def test_every_listed_problem_type_has_one_translated_title(
    app: Flask, document: dict[str, Any], language: str
) -> None:
    listed = document["components"]["schemas"]["Problem"]["x-problem-types"]
    with app.test_request_context(headers={"Accept-Language": language}):
        titles = {uri: i18n.title(english) for uri, english in listed.items()}
    assert all(titles[uri] != english for uri, english in listed.items())
    # Two types may not share a title in any language, or a client could not tell them apart.
    assert len(set(titles.values())) == len(titles)


def test_werkzeug_and_casework_errors_of_one_type_share_its_title(client: FlaskClient) -> None:
    """412 from a stale If-Match (casework) and 405 (werkzeug) both use the registry."""
    for accept in ("en", "ko"):
        answer = client.delete("/api/v1/codes", headers={"Accept-Language": accept})
        body = answer.get_json()
        assert answer.status_code == 405
        with client.application.test_request_context(headers={"Accept-Language": accept}):
            assert body["title"] == i18n.title(TITLES["method-not-allowed"])
    with pytest.raises(ValueError, match="two titles"):
        register_problem("not-found", "Missing")
