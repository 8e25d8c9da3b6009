"""HTTP hygiene applied to every request: size and media-type limits, request
ids, security headers and the one-line request log.

The request id is always minted here: it is written into the hash-chained
access log, which can never be erased, so nothing a client chose may become
it. A client's own correlation id is echoed back and stored nowhere.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType
from werkzeug.middleware.proxy_fix import ProxyFix

from casework.errors import CaseworkError, NotFound, ValidationFailed

REQUEST_ID_HEADER = "X-Request-ID"
CLIENT_REQUEST_ID_HEADER = "X-Client-Request-ID"
_CLIENT_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NUL = "\x00"
NO_NUL = "NUL characters are not accepted."
log = logging.getLogger("casework.request")


def new_request_id() -> str:
    """The id of this request in the access log and the request log: always the server's."""
    return uuid.uuid4().hex


def _echoable_client_id(value: str | None) -> str | None:
    """A caller's own ``X-Request-ID`` to echo (never stored), when it is a plain token."""
    if value and _CLIENT_REQUEST_ID_RE.fullmatch(value):
        return value
    return None


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def refuse_nul() -> None:
    """Refuse NUL in a request: in a path segment (404), the query (400), a JSON body (422).

    No name, code, cursor or text of casework holds one, and PostgreSQL cannot
    store one in text: refused here, it can never reach a query as a 500.
    Called by the access decorators once the caller is authenticated, so an
    anonymous caller still gets 401 whatever the request holds.
    """
    req = request._get_current_object()  # type: ignore[attr-defined]
    if any(NUL in value for value in (req.view_args or {}).values() if isinstance(value, str)):
        raise NotFound("No such resource.")
    if req.query_string and any(NUL in key + value for key, value in req.args.items(multi=True)):
        raise CaseworkError(NO_NUL)
    if req.method not in _WRITE_METHODS:
        return
    try:
        body = req.get_json(silent=True)
    except RecursionError:  # the decoder's own limit; a 500 before
        raise CaseworkError("The JSON body is nested too deeply.") from None
    if has_nul(body):
        raise ValidationFailed(NO_NUL, errors={"json": {"_schema": [NO_NUL]}})


def has_nul(value: Any) -> bool:
    """Whether a decoded JSON value holds NUL in any string, keys included.

    Walks with its own stack: a body nested as deep as the decoder allows
    must not exhaust Python's.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if NUL in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def trust_proxies(app: Flask, hops: int) -> None:
    """Believe the last ``hops`` entries of ``X-Forwarded-For``, ``-Proto`` and ``-Host``.

    Behind a reverse proxy every request comes from the proxy's address, so the
    login throttle would count all users as one client; and the scheme and host
    that signed device requests cover are the proxy's public ones. With 0 (the
    default) the headers are ignored: a client that sends them changes nothing.
    Raises ValueError for a negative count.
    """
    if hops < 0:
        raise ValueError("trusted_proxies must be 0 or more")
    if hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops
        )


def install(app: Flask) -> None:
    """Register the before/after hooks."""
    limit = app.config["MAX_CONTENT_LENGTH"]

    @app.before_request
    def _start() -> None:
        # The request and g resolved once: each proxy lookup costs a context-variable read.
        req = request._get_current_object()  # type: ignore[attr-defined]
        app_g = g._get_current_object()
        app_g.request_started = time.perf_counter()
        app_g.request_id = new_request_id()
        length = req.content_length
        if length is not None and length > limit:
            raise RequestEntityTooLarge()
        if req.routing_exception is not None:
            return
        if req.method not in _WRITE_METHODS:
            return
        has_body = bool(length) or req.headers.get("Transfer-Encoding") == "chunked"
        if req.path.startswith("/api/") and has_body and not _is_json(req.mimetype):
            raise UnsupportedMediaType()

    @app.after_request
    def _finish(response: Response) -> Response:
        req = request._get_current_object()  # type: ignore[attr-defined]
        app_g = g._get_current_object()
        headers = response.headers
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["X-Frame-Options"] = "DENY"
        # JSON needs no sources at all; the docs pages set their own (self only).
        headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
        path = req.path
        if path.startswith("/api/") or path in ("/healthz", "/readyz"):
            headers["Cache-Control"] = "no-store"
        request_id = app_g.get("request_id")
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        client_id = _echoable_client_id(req.headers.get(REQUEST_ID_HEADER))
        if client_id:
            headers[CLIENT_REQUEST_ID_HEADER] = client_id
        if log.isEnabledFor(logging.INFO):
            started = app_g.get("request_started")
            rule = req.url_rule
            log.info(
                "request",
                extra={
                    "method": req.method,
                    "route": rule.rule if rule else None,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2)
                    if started
                    else None,
                    "request_id": request_id,
                },
            )
        return response
