"""The exception tree and its rendering as ``application/problem+json`` (RFC 9457).

Services raise these; one handler turns them into responses. No exception text
from a library ever reaches a client: unexpected errors become a 500 that
carries only the request id, which the server log also holds.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from flask import Flask, Response, g, json
from werkzeug.exceptions import HTTPException

from casework import i18n

PROBLEM_MIME = "application/problem+json"
PROBLEM_BASE = "urn:casework:problem:"
log = logging.getLogger("casework.errors")

TITLES: dict[str, str] = {}
"""Every problem type (slug) -> its one English title (RFC 9457 §3.1.3: the title of a
type does not change from occurrence to occurrence); translated per request."""


def register_problem(slug: str, title: str) -> None:
    """Declare a problem type; a second, different title for one slug is a programming
    error, caught at import."""
    if TITLES.setdefault(slug, title) != title:
        raise ValueError(f"problem type {slug!r} has two titles: {TITLES[slug]!r}, {title!r}")


def problem_types() -> list[str]:
    """Every declared problem type URI, sorted (the OpenAPI document lists them)."""
    return sorted(PROBLEM_BASE + slug for slug in TITLES)


class CaseworkError(Exception):
    """Base of every error a client may see; ``slug`` is the stable problem type, and
    ``title`` its one title (each subclass registers the pair)."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register_problem(cls.slug, cls.title)

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    def headers(self) -> dict[str, str]:
        """Extra response headers (``Retry-After``, ``WWW-Authenticate``...)."""
        return {}


class Unauthorized(CaseworkError):
    status, slug, title = 401, "unauthorized", "Authentication required"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="casework"'}


class Forbidden(CaseworkError):
    status, slug, title = 403, "forbidden", "Not permitted"


class NotFound(CaseworkError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(CaseworkError):
    status, slug, title = 409, "conflict", "Conflict"


class FourEyesRequired(Conflict):
    """409: a decision that changes a person's fate needs a second person; the first
    (the requester, the proposer) cannot take it."""

    slug, title = "four-eyes-required", "A second person must decide"


class PreconditionFailed(CaseworkError):
    status, slug, title = 412, "precondition-failed", "The resource has changed"


class PreconditionRequired(CaseworkError):
    status, slug, title = 428, "precondition-required", "If-Match is required"


class ValidationFailed(CaseworkError):
    """422 with per-field messages in ``errors`` ({location: {field: [message]}})."""

    status, slug, title = 422, "validation-failed", "The request is not valid"


class TooManyRequests(CaseworkError):
    status, slug, title = 429, "too-many-requests", "Too many attempts"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ServiceUnavailable(CaseworkError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


register_problem(CaseworkError.slug, CaseworkError.title)

# Stable problem types for the HTTP errors Werkzeug raises itself.
_HTTP_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    412: "precondition-failed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-failed",
    428: "precondition-required",
    429: "too-many-requests",
}
for _slug, _title in {
    "method-not-allowed": "Method not allowed",
    "not-acceptable": "Not acceptable",
    "payload-too-large": "Payload too large",
    "unsupported-media-type": "Unsupported media type",
    "http-error": "HTTP error",
    "internal-error": "Internal server error",
}.items():
    register_problem(_slug, _title)


def problem(status: int, slug: str, detail: str, **extra: Any) -> Response:
    """Build a problem+json response with the type's one title in the request's language;
    ``extra`` becomes extension members."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": i18n.title(TITLES[slug]),
        "status": status,
        "detail": detail,
    }
    request_id = g.get("request_id")
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    return Response(json.dumps(body), status=status, mimetype=PROBLEM_MIME)


def _from_casework(exc: CaseworkError) -> Response:
    response = problem(exc.status, exc.slug, exc.detail, **exc.extra)
    response.headers.update(exc.headers())
    return response


def _from_http(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status >= 500:
        return _internal_error(exc)
    extra: dict[str, Any] = {}
    data = getattr(exc, "data", None)
    if status == 422 and isinstance(data, dict) and "messages" in data:
        extra["errors"] = data["messages"]
    detail = _HTTP_DETAILS.get(status, exc.name)
    response = problem(status, _HTTP_SLUGS.get(status, "http-error"), detail, **extra)
    if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
        response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
    if isinstance(data, dict) and isinstance(data.get("headers"), dict):
        response.headers.update(data["headers"])
    return response


_HTTP_DETAILS = {
    400: "The request could not be understood.",
    404: "No such resource.",
    405: "This method is not allowed on this resource.",
    413: "The request body is larger than the service accepts.",
    415: "Request bodies must be application/json.",
    422: "The request is not valid; see errors.",
    412: "The resource has changed since you read it.",
    428: "This request must carry If-Match with the resource's ETag.",
}


def _internal_error(exc: BaseException) -> Response:
    # The message of an exception can hold data (a value in a failed statement):
    # log the type and the frames only, never str(exc).
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error(
        "unhandled error",
        extra={"error_type": type(exc).__name__, "frames": frames},
    )
    return problem(
        500,
        "internal-error",
        "The service failed; quote the request id to an administrator.",
    )


def install_error_handlers(app: Flask) -> None:
    """Register the handlers; called after the OpenAPI layer so ours win."""
    app.register_error_handler(CaseworkError, _from_casework)
    app.register_error_handler(HTTPException, _from_http)
    app.register_error_handler(Exception, _internal_error)
