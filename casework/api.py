"""The OpenAPI layer: one flask-smorest ``Api`` with the casework conventions.

The document at ``/api/v1/openapi.json`` is generated from the marshmallow
schemas of every route; the interactive docs at ``/api/v1/docs`` are served
from a bundled copy of Swagger UI so they work on an offline field network.
"""

from __future__ import annotations

import http
import re
import types
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from enum import Enum, StrEnum
from typing import Any, cast

from flask import Flask, Response, current_app, json, send_from_directory, url_for
from flask.typing import ResponseReturnValue
from flask_smorest import Api
from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest.utils import prepare_response
from markupsafe import escape
from marshmallow import RAISE, Schema, ValidationError, fields, validate
from swagger_ui_bundle import swagger_ui_path

from casework.errors import PROBLEM_BASE, PROBLEM_MIME, TITLES

API_PREFIX = "/api/v1"
DOCS_ASSETS = f"{API_PREFIX}/docs/assets/"
#: The docs pages load scripts, styles, images and the OpenAPI document from this
#: origin only, and may not be framed: they talk to nobody else.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
#: Our start-up script for Swagger UI, served beside its bundle: an inline script
#: would need 'unsafe-inline'. ``validatorUrl: null`` stops Swagger UI from sending
#: the document's URL to a third-party validator whenever the host is not localhost.
DOCS_SCRIPT_NAME = "casework-docs.js"
DOCS_SCRIPT = """window.addEventListener("load", function () {
  var container = document.getElementById("swagger-ui-container");
  window.ui = SwaggerUIBundle({
    url: container.getAttribute("data-spec-url"),
    dom_id: "#swagger-ui-container",
    validatorUrl: null
  });
});
"""
_DOCS_PAGE = """<!DOCTYPE html>
<html>
  <head>
    <meta charset="utf-8">
    <title>{title}</title>
    <link href="{assets}swagger-ui.css" rel="stylesheet" type="text/css">
  </head>
  <body>
    <div id="swagger-ui-container" data-spec-url="{spec_url}"></div>
    <script src="{assets}swagger-ui-bundle.js"></script>
    <script src="{assets}{script}"></script>
  </body>
</html>
"""


class ProblemSchema(Schema):
    """RFC 9457 problem details, as every error response carries them."""

    type = fields.String(
        required=True,
        metadata={"description": "Stable problem type URI; every one is in x-problem-types."},
    )
    title = fields.String(
        required=True,
        metadata={"description": "The type's one title, in the Accept-Language language."},
    )
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    request_id = fields.String(metadata={"description": "Quote it to an administrator."})
    errors = fields.Dict(metadata={"description": "Per-field messages (422 only)."})


class Pattern(validate.Regexp):
    """A regular expression the whole value must match, published as the field's ``pattern``.

    OpenAPI patterns are ECMA-262 regular expressions, so write them with ``^``
    and ``$`` (never Python's ``\\Z``): the same text then means the same to the
    server, to clients and to the fuzzer. Python's ``$`` also matches before a
    final newline; matching the whole value closes that gap.
    """

    def __call__(self, value: Any) -> Any:
        regex = cast("re.Pattern[str]", self.regex)  # built from text, never from bytes
        if not isinstance(value, str) or regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


def api_config(app: Flask) -> dict[str, Any]:
    """flask-smorest settings; applied before the Api is created."""
    return {
        "API_TITLE": "casework",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.1.0",
        "OPENAPI_URL_PREFIX": API_PREFIX,
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        "OPENAPI_SWAGGER_UI_URL": DOCS_ASSETS,
        "OPENAPI_SWAGGER_UI_CONFIG": {"validatorUrl": None},
        "API_SPEC_OPTIONS": {
            "info": {
                "description": (
                    "Case management for NGOs that protect refugees and stateless people. "
                    "Errors are application/problem+json (RFC 9457). Personal data never "
                    "travels in a URL: searches are POST with a JSON body."
                )
            },
            "components": {
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "opaque"}
                }
            },
        },
    }


class CaseworkApi(Api):
    """flask-smorest's Api, documenting errors as they are sent: problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = ProblemSchema
            prepare_response(response, self.spec, PROBLEM_MIME)
            self.spec.components.response(status.name, response, lazy=True)
        default = {"description": "Error (RFC 9457 problem details)", "schema": ProblemSchema}
        prepare_response(default, self.spec, PROBLEM_MIME)
        self.spec.components.response("DEFAULT_ERROR", default, lazy=True)

    def _openapi_json(self) -> Response:
        """Serve the document, rendered once: it cannot change while the process runs."""
        if self._rendered is None:
            document = self.spec.to_dict()
            problem = document["components"]["schemas"]["Problem"]
            # Every problem type with its one (English) title; ``title`` in a response is
            # this title in the request's language (Accept-Language).
            problem["x-problem-types"] = {PROBLEM_BASE + s: t for s, t in sorted(TITLES.items())}
            self._rendered = json.dumps(document, indent=2)
        return Response(self._rendered, mimetype="application/json")

    _rendered: str | None = None

    def _openapi_swagger_ui(self) -> Response:
        """The interactive docs: Swagger UI started by a script of ours, under a strict CSP."""
        page = _DOCS_PAGE.format(
            title=escape(self.spec.title),
            assets=escape(DOCS_ASSETS),
            spec_url=escape(url_for(f"{self._make_doc_blueprint_name()}.openapi_json")),
            script=DOCS_SCRIPT_NAME,
        )
        response = Response(page, mimetype="text/html")
        response.headers["Content-Security-Policy"] = DOCS_CSP
        return response


def create_api(app: Flask) -> Api:
    """Create the Api, register the problem schema and the offline docs assets."""
    app.config.update(api_config(app))
    api = CaseworkApi(app)  # registers ProblemSchema as "Problem" with the error responses

    def docs_asset(filename: str) -> ResponseReturnValue:
        if filename == DOCS_SCRIPT_NAME:
            response = Response(DOCS_SCRIPT, mimetype="text/javascript")
        else:
            response = send_from_directory(swagger_ui_path, filename, max_age=3600)
        response.headers["Content-Security-Policy"] = DOCS_CSP
        return response

    app.add_url_rule(f"{DOCS_ASSETS}<path:filename>", "docs_asset", docs_asset)
    return api


def jsonable(value: Any) -> Any:
    """Dates, times, ids and enum members as JSON text, recursively (as the schemas dump
    them: ISO 8601, the UUID's canonical text, the member's value)."""
    kind = type(value)
    if kind in _AS_IS:  # most values of a view: one lookup, no isinstance chain
        return value
    if kind is dict:
        return {
            key if type(key) is str else str(key): item if type(item) in _AS_IS else jsonable(item)
            for key, item in value.items()
        }
    if kind is list:
        return [item if type(item) in _AS_IS else jsonable(item) for item in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


_AS_IS = frozenset({str, int, float, bool, type(None)})


def json_answer(body: Any) -> Response:
    """A JSON response of ``body`` (JSON-ready: see :func:`jsonable`) without a schema dump.

    For the hot reads (a case, a list page, a search), whose views are built
    exactly as their response schema dumps them (tests compare the two): the
    schema stays the documented contract, the dump's per-field work goes. A
    route returns it as it would a dict; its status and headers are set as usual.
    """
    return cast(Response, current_app.json.response(body))  # what flask-smorest's jsonify does


class Blueprint(SmorestBlueprint):
    """A flask-smorest blueprint; every route must also say who may call it.

    ``alt_response`` and ``doc`` only document a view, yet flask-smorest's wrap it in a
    layer that resolves the app and calls it (a route with four problem answers ran five
    such layers per request). Here they leave the view uncalled-through: a copy of it
    carries the same ``_apidoc``, so the OpenAPI document is unchanged.
    """

    def alt_response(self, *args: Any, **kwargs: Any) -> Decorator:
        return _documenting_only(super().alt_response(*args, **kwargs))

    @staticmethod
    def doc(**kwargs: Any) -> Decorator:
        return _documenting_only(SmorestBlueprint.doc(**kwargs))


def _documenting_only(decorator: Decorator) -> Decorator:
    """``decorator`` (one that adds to a view's ``_apidoc`` and wraps it in a pass-through
    layer) without the layer: a copy of the view, holding the ``_apidoc`` it would have."""

    def decorate(view: Any) -> Any:
        documented = decorator(view)
        if not isinstance(view, types.FunctionType):
            return documented
        copy = types.FunctionType(
            view.__code__, view.__globals__, view.__name__, view.__defaults__, view.__closure__
        )
        copy.__dict__.update(view.__dict__)
        copy.__kwdefaults__ = view.__kwdefaults__
        copy.__qualname__ = view.__qualname__
        copy.__doc__ = view.__doc__
        copy.__module__ = view.__module__
        copy.__annotations__ = view.__annotations__
        copy._apidoc = documented._apidoc  # type: ignore[attr-defined]
        return copy

    return decorate


Decorator = Callable[[Any], Any]


def problem_responses(
    bp: SmorestBlueprint, descriptions: Mapping[int, str]
) -> Callable[..., Decorator]:
    """A ``problems(*statuses)`` decorator for ``bp``'s views: it documents each status as a
    problem+json answer, described by the feature's own ``descriptions``."""

    def problems(*statuses: int) -> Decorator:
        def decorate(view: Any) -> Any:
            for status in statuses:
                view = bp.alt_response(
                    status,
                    schema="Problem",
                    content_type=PROBLEM_MIME,
                    description=descriptions[status],
                )(view)
            return view

        return decorate

    return problems


# --- the HTTP kit every feature's routes share ---------------------------------------------

IF_MATCH = {
    "in": "header",
    "name": "If-Match",
    "required": True,
    "schema": {"type": "string"},
    "description": "The ETag of the version being changed, as last read; missing: 428, stale: 412.",
}
ETAG_HEADER = {"ETag": {"description": "The resource's version.", "schema": {"type": "string"}}}
PROBLEMS = {
    401: "Missing, malformed, expired or revoked token.",
    403: "The caller's role does not permit this.",
    404: "No such resource, or not in the caller's office.",
    409: "Conflicts with the current state.",
    410: "The case was erased (crypto-shredded); only its history remains.",
    412: "The resource has changed since it was read (If-Match).",
    422: "The request is not valid; see errors.",
    428: "If-Match is required.",
    429: "Too many failed attempts; see Retry-After.",
}


def problems(
    bp: SmorestBlueprint, *statuses: int, descriptions: Mapping[int, str] | None = None
) -> Decorator:
    """Document the problem+json answers a view of ``bp`` can give (and the bearer token,
    with 401); ``descriptions`` overrides the shared wording for one feature."""
    wording = {**PROBLEMS, **(descriptions or {})}

    def decorate(view: Any) -> Any:
        view = problem_responses(bp, wording)(*statuses)(view)
        return bp.doc(security=[{"bearer": []}])(view) if 401 in statuses else view

    return decorate


# --- the schema kit every input schema is built from ---------------------------------------


class StrictSchema(Schema):
    """Base of every input schema: unknown fields are an error, never ignored."""

    class Meta:
        unknown = RAISE


class NoBody(StrictSchema):
    """No fields: a body, if sent, must be ``{}``."""


class Text(fields.String):
    """A string that is neither blank nor too long and holds no control characters."""

    # marshmallow merges this class attribute along the MRO: it must stay one.
    default_error_messages = {  # noqa: RUF012
        "blank": "Must not be empty; send null or leave the field out instead.",
        "too_long": "At most {max} characters.",
        "control": "Must not contain control characters.",
    }

    def __init__(self, *, max_length: int, multiline: bool = False, **kwargs: Any) -> None:
        metadata = {"maxLength": max_length, "minLength": 1, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)
        self.max_length = max_length
        self.allowed_controls = frozenset("\n\r\t") if multiline else frozenset()

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text) > self.max_length:
            raise self.make_error("too_long", max=self.max_length)
        if not text.strip():
            raise self.make_error("blank")
        if any(_is_forbidden(c, self.allowed_controls) for c in text):
            raise self.make_error("control")
        return text


def _is_forbidden(char: str, allowed: frozenset[str]) -> bool:
    # Surrogates (lone halves that JSON can carry) cannot be encoded for the
    # blind index or the cipher; NUL and other controls break storage and logs.
    category = unicodedata.category(char)
    return category == "Cs" or (category == "Cc" and char not in allowed)


REPEATED = "Listed more than once."


def enum_in(enum: type[StrEnum], description: str, **kwargs: Any) -> fields.Enum:
    """An input field taking one of ``enum``'s values (documented as an enum in OpenAPI)."""
    return fields.Enum(enum, by_value=True, metadata={"description": description}, **kwargs)


def matches(pattern: re.Pattern[str], message: str) -> validate.Validator:
    """A validator: the whole value matches ``pattern``, published as ``^...$`` (ECMA-262)."""
    return Pattern(f"^{pattern.pattern}$", error=message)


def unique(values: Iterable[Any]) -> None:
    """A list validator: no item may appear twice."""
    items = list(values)
    if len(items) != len(set(items)):
        raise ValidationError(REPEATED)


class StrictInteger(fields.Integer):
    """An integer that must be a JSON integer: no strings, floats or booleans."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        result: int = super()._deserialize(value, attr, data, **kwargs)
        return result


class StrictBoolean(fields.Boolean):
    """A boolean that must be JSON ``true`` or ``false``, not ``"yes"`` or ``1``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value
