"""HTTP hygiene applied to every request: size and media-type limits, request
ids, security headers and the one-line request log."""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
log = logging.getLogger("casework.request")


def _accepted_request_id(value: str | None) -> str:
    """Echo a caller's id when it is a plain token, otherwise mint one."""
    if value and _REQUEST_ID_RE.match(value):
        return value
    return uuid.uuid4().hex


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def install(app: Flask) -> None:
    """Register the before/after hooks."""
    limit = app.config["MAX_CONTENT_LENGTH"]

    @app.before_request
    def _start() -> None:
        g.request_started = time.perf_counter()
        g.request_id = _accepted_request_id(request.headers.get(REQUEST_ID_HEADER))
        length = request.content_length
        if length is not None and length > limit:
            raise RequestEntityTooLarge()
        if request.routing_exception is not None:
            return
        has_body = bool(length) or request.headers.get("Transfer-Encoding") == "chunked"
        if (
            request.method in _WRITE_METHODS
            and request.path.startswith("/api/")
            and has_body
            and not _is_json(request.mimetype)
        ):
            raise UnsupportedMediaType()

    @app.after_request
    def _finish(response: Response) -> Response:
        headers = response.headers
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["X-Frame-Options"] = "DENY"
        if request.path.startswith("/api/") or request.path in ("/healthz", "/readyz"):
            headers["Cache-Control"] = "no-store"
        request_id = g.get("request_id")
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        started = g.get("request_started")
        log.info(
            "request",
            extra={
                "method": request.method,
                "route": request.url_rule.rule if request.url_rule else None,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2)
                if started
                else None,
                "request_id": request_id,
            },
        )
        return response
