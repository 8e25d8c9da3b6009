import re
import time
from pathlib import Path

from flask.testing import FlaskClient
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from sqlalchemy import text

from casework.db import get_db
from tests.cases.scratch import scratch_service


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_when_migrated(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"status": "ready"}


def test_readyz_answers_while_a_writer_holds_the_database(
    database_url: str, tmp_path: Path
) -> None:
    """A probe must not queue behind writers (on SQLite every request writes)."""
    with scratch_service(database_url, tmp_path) as scratch:
        database = get_db(scratch.app)
        with database.session_factory() as writer:
            writer.execute(text("SELECT 1"))  # on SQLite: BEGIN IMMEDIATE, the write lock
            client = scratch.app.test_client()
            started = time.monotonic()
            response = client.get("/readyz")
            waited = time.monotonic() - started
            writer.rollback()
    assert response.status_code == 200, response.get_data(as_text=True)
    # SQLite's busy timeout is 10 s: a probe that queued would wait it out, then answer 503.
    assert waited < 5


def test_openapi_document_is_valid(client: FlaskClient) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"] == "3.1.0"
    validate(document, cls=OpenAPIV31SpecValidator)
    assert "/healthz" in document["paths"]


def test_openapi_document_says_null_the_3_1_way(client: FlaskClient) -> None:
    """3.1 is JSON Schema 2020-12: a nullable field is ``type: [..., "null"]``; the 3.0
    keyword ``nullable`` would be ignored by every 3.1 client."""
    text = client.get("/api/v1/openapi.json").get_data(as_text=True)
    assert '"nullable"' not in text
    assert '"null"' in text


def test_interactive_docs_are_served_offline(client: FlaskClient) -> None:
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert "/api/v1/docs/assets/swagger-ui-bundle.js" in page.get_data(as_text=True)
    asset = client.get("/api/v1/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200


def _csp(header: str) -> dict[str, list[str]]:
    directives = [d.split() for d in header.split(";") if d.strip()]
    return {d[0]: d[1:] for d in directives}


def test_docs_pages_talk_to_nobody_else(client: FlaskClient) -> None:
    """A strict CSP (this origin only, no inline script) and no third-party validator."""
    page = client.get("/api/v1/docs")
    policy = _csp(page.headers["Content-Security-Policy"])
    assert policy["default-src"] == ["'none'"]
    for directive in ("script-src", "style-src", "img-src", "connect-src", "font-src"):
        assert policy[directive] == ["'self'"], directive
    assert policy["frame-ancestors"] == ["'none'"]
    assert all(source in ("'self'", "'none'") for sources in policy.values() for source in sources)
    html = page.get_data(as_text=True)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts
    for attributes, body in scripts:  # no inline script: the policy would block it
        assert body.strip() == ""
        assert re.search(r'src="/api/v1/docs/assets/[\w.-]+\.js"', attributes)
    assert "http" not in html  # nothing absolute: every URL is of this origin
    start = client.get("/api/v1/docs/assets/casework-docs.js")
    assert start.status_code == 200
    script = start.get_data(as_text=True)
    assert "validatorUrl: null" in script
    assert "http" not in script
    assert _csp(start.headers["Content-Security-Policy"]) == policy
    json_answer = client.get("/healthz")
    assert _csp(json_answer.headers["Content-Security-Policy"])["default-src"] == ["'none'"]
