"""Errors as problem+json, and the HTTP hygiene every response gets."""

import base64
import json
import logging
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework import create_app
from casework.audit.models import AuditEntry
from casework.logs import JsonFormatter, LineHandler
from tests.conftest import principal_headers

PROBLEM = "application/problem+json"


def test_unknown_path_is_problem_404(client: FlaskClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["type"] == "urn:casework:problem:not-found"
    assert body["status"] == 404
    assert {"title", "detail"} <= body.keys()


def test_wrong_method_is_problem_405(client: FlaskClient) -> None:
    response = client.post("/healthz")
    assert response.status_code == 405
    assert response.mimetype == PROBLEM
    assert "GET" in response.headers["Allow"]


def test_large_body_is_413(client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/anything", data=b"x" * (2 * 1024 * 1024), content_type="application/json"
    )
    assert response.status_code == 413
    assert response.mimetype == PROBLEM


@pytest.fixture
def scratch_app(app_config: dict[str, Any]) -> Flask:
    """A fresh application that tests may add throw-away routes to."""
    application = create_app(app_config)

    @application.route("/api/v1/_test_echo", methods=["POST"])
    def _echo() -> dict[str, bool]:
        return {"ok": True}

    @application.route("/_test_boom")
    def _boom() -> None:
        raise RuntimeError("SELECT secret FROM cases WHERE name='Amina'")

    return application


def test_form_post_to_api_route_is_415(scratch_app: Flask) -> None:
    client = scratch_app.test_client()
    assert client.post("/api/v1/_test_echo", json={"a": "b"}).status_code == 200
    response = client.post("/api/v1/_test_echo", data={"a": "b"})
    assert response.status_code == 415
    assert response.mimetype == PROBLEM
    assert response.get_json(force=True)["type"].endswith("unsupported-media-type")


def test_security_headers_and_request_id(client: FlaskClient) -> None:
    response = client.get("/api/v1/openapi.json", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert len(response.headers["X-Request-ID"]) == 32  # the server's, never the caller's
    assert response.headers["X-Client-Request-ID"] == "abc-123"  # echoed, stored nowhere


def test_unsafe_client_request_id_is_not_echoed(client: FlaskClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert response.headers["X-Request-ID"] != "<script>"
    assert len(response.headers["X-Request-ID"]) == 32
    assert "X-Client-Request-ID" not in response.headers


def test_a_client_request_id_reaches_neither_the_access_log_nor_the_request_log(
    client: FlaskClient, db_session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    """A caller could otherwise plant personal data in the hash-chained log for ever."""
    planted = "Amina.Yusuf-1990-passport-P1234567"
    logger = logging.getLogger("casework.request")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="casework"):
            response = client.post(
                "/api/v1/auth/login",
                json={"username": "nobody-here", "password": "wrong-password-1"},
                headers={"X-Request-ID": planted},
            )
    finally:
        logger.removeHandler(caplog.handler)
    assert response.status_code == 401
    server_id = response.headers["X-Request-ID"]
    assert server_id != planted
    assert response.headers["X-Client-Request-ID"] == planted
    stored = db_session.scalars(select(AuditEntry.request_id)).all()
    assert server_id in stored  # the refusal's entry, under the server's id
    assert planted not in stored
    lines = [r for r in caplog.records if r.name == "casework.request"]
    assert lines
    assert {r.__dict__["request_id"] for r in lines} == {server_id}
    assert planted not in "".join(JsonFormatter().format(r) for r in caplog.records)


def test_request_log_line_has_route_template_not_url(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("casework.request")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="casework"):
            client.get("/healthz?name=secret-value")
    finally:
        logger.removeHandler(caplog.handler)
    record = next(r for r in caplog.records if r.name == "casework.request")
    assert record.__dict__["route"] == "/healthz"
    assert record.__dict__["status"] == 200
    line = JsonFormatter().format(record)
    assert "secret-value" not in line
    assert json.loads(line)["request_id"]


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("casework.request", logging.INFO, __file__, 1, message, (), None)


def test_log_lines_go_out_whole_from_many_threads_without_a_lock(tmp_path: Any) -> None:
    import threading

    handler = LineHandler(open(tmp_path / "log", "a", encoding="utf-8"))  # noqa: SIM115
    handler.setFormatter(JsonFormatter())
    assert handler.lock is None  # nothing for a thread to queue behind
    long_message = "x" * 10_000  # beyond PIPE_BUF: written under the handler's own lock

    def write(number: int) -> None:
        for _ in range(200):
            handler.handle(_record(f"t{number}" if number % 2 else long_message))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handler.stream.close()
    lines = (tmp_path / "log").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1200
    assert all(json.loads(line)["logger"] == "casework.request" for line in lines)


def test_log_lines_reach_a_stream_without_a_descriptor() -> None:
    import io

    stream = io.StringIO()
    handler = LineHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.handle(_record("request"))
    assert json.loads(stream.getvalue())["msg"] == "request"


def test_internal_error_hides_exception_text(scratch_app: Flask) -> None:
    response = scratch_app.test_client().get("/_test_boom")
    assert response.status_code == 500
    assert response.mimetype == PROBLEM
    text = response.get_data(as_text=True)
    assert "Amina" not in text
    assert "SELECT" not in text
    assert "Traceback" not in text
    assert response.get_json(force=True)["request_id"] == response.headers["X-Request-ID"]


def _cursor(after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    [
        ("GET", "/api/v1/offices/a%00b", None, 404),
        ("GET", "/api/v1/users/%00", None, 404),
        ("GET", "/api/v1/offices?cursor=" + _cursor("\x00"), None, 422),
        ("GET", "/api/v1/users?cursor=" + _cursor("\x00"), None, 422),
        ("GET", "/api/v1/offices?limit=5&x%00=1", None, 400),
        ("POST", "/api/v1/auth/login", {"username": "a\x00", "password": "x"}, 422),
        ("POST", "/api/v1/offices", {"code": "ab", "name": "N", "country_code": "A\x00"}, 422),
    ],
)
def test_nul_is_refused_before_it_reaches_the_database(
    client: FlaskClient, method: str, url: str, body: Any, status: int
) -> None:
    """PostgreSQL refuses NUL in text: found by fuzzing as 500s on PostgreSQL only."""
    admin = principal_headers("admin", None, "adm-nul")
    response = client.open(url, method=method, json=body, headers=admin)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"


def test_an_anonymous_caller_gets_401_whatever_the_request_holds(client: FlaskClient) -> None:
    """NUL is refused after authentication: the access check comes first, always."""
    response = client.patch("/api/v1/offices/goma", json={"name": "\x00"})
    assert response.status_code == 401
    assert client.get("/api/v1/offices/a%00b").status_code == 401


@pytest.mark.parametrize("depth", [900, 5000])
def test_deeply_nested_json_is_refused_not_a_500(client: FlaskClient, depth: int) -> None:
    """A body nested to the decoder's limit used to end in a RecursionError (500)."""
    admin = principal_headers("admin", None, "adm-deep")
    body = "[" * depth + "]" * depth
    headers = {**admin, "Content-Type": "application/json"}
    response = client.post("/api/v1/offices", data=body, headers=headers)
    assert response.status_code in (400, 422)
    assert response.mimetype == "application/problem+json"
