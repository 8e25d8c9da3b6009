"""Who is calling, and may they? Route-level access declarations.

Every view declares either :func:`public` or :func:`requires`; the application
refuses to start when one does not (see :func:`check_every_route_declared`),
so a forgotten check is a start-up failure, not an open door.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Flask, current_app, g
from sqlalchemy import ColumnElement, false

from casework.authz.permissions import Permission, permissions_for
from casework.errors import Forbidden, NotFound, Unauthorized
from casework.http import refuse_nul

F = TypeVar("F", bound=Callable[..., Any])
#: The 401 of a request that names no caller (no or an unusable ``Authorization``).
TOKEN_REQUIRED = "A valid bearer token is required."  # noqa: S105 - a message
ACCESS_ATTR = "_casework_access"
# Endpoints Flask or the OpenAPI layer register themselves: static files and docs.
FRAMEWORK_PUBLIC_ENDPOINTS = frozenset(
    {
        "static",
        "docs_asset",
        "api-docs.openapi_json",
        "api-docs.openapi_swagger_ui",
        "api-docs.static",
    }
)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a staff user or an enrolled device."""

    user_id: str | None
    role: str
    office: str | None
    device_id: str | None = None
    session_id: str | None = None
    # A user who must enrol in MFA first holds a token good only for enrolment.
    mfa_pending: bool = False
    permissions: frozenset[Permission] = field(default=frozenset())

    @classmethod
    def for_role(cls, role: str, **kwargs: Any) -> Principal:
        return cls(role=role, permissions=permissions_for(role), **kwargs)

    def has(self, permission: Permission) -> bool:
        return permission in self.permissions


Authenticator = Callable[[], Principal | None]


@dataclass(frozen=True)
class Access:
    """What a view declared: public, or the permissions it needs."""

    public: bool
    permissions: tuple[Permission, ...] = ()
    allow_mfa_pending: bool = False


def public(view: F) -> F:
    """Mark a view as open to anonymous callers (health, login, OpenAPI)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        refuse_nul()
        return view(*args, **kwargs)

    setattr(wrapper, ACCESS_ATTR, Access(public=True))
    _document(wrapper, {"security": []})
    return wrapper  # type: ignore[return-value]


def _problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def _document(view: Any, extra: dict[str, Any]) -> None:
    """Merge ``extra`` into the view's OpenAPI operation (flask-smorest ``manual_doc``)."""
    apidoc = copy.deepcopy(getattr(view, "_apidoc", {}))
    manual = apidoc.setdefault("manual_doc", {})
    for key, value in extra.items():
        if isinstance(value, dict):
            manual.setdefault(key, {}).update(value)
        else:
            manual[key] = value
    view._apidoc = apidoc


def requires(*permissions: Permission, allow_mfa_pending: bool = False) -> Callable[[F], F]:
    """Authenticate the caller and require every permission in ``permissions``.

    Put it directly under the route decorator so authentication happens before
    the body is parsed: an anonymous caller learns nothing about the schema.
    """
    declared = Access(public=False, permissions=permissions, allow_mfa_pending=allow_mfa_pending)

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            app_g = g._get_current_object()
            app_g.casework_access = declared
            _authorise(declared, app_g)
            refuse_nul()
            return view(*args, **kwargs)

        setattr(wrapper, ACCESS_ATTR, declared)
        _document(
            wrapper,
            {
                "security": [{"bearer": []}],
                "x-permissions": [p.value for p in declared.permissions],
                "responses": {
                    "401": _problem_response("Authentication required."),
                    "403": _problem_response("The caller's role lacks a required permission."),
                },
            },
        )
        return wrapper  # type: ignore[return-value]

    return decorate


def register_authenticator(app: Flask, authenticator: Authenticator) -> None:
    """Add a way to identify callers (bearer tokens, signed device requests)."""
    app.extensions.setdefault("casework.authenticators", []).append(authenticator)


def current_principal() -> Principal | None:
    """The caller of this request, authenticating on first use; None if anonymous."""
    return _principal_of(g._get_current_object())


def _principal_of(app_g: Any) -> Principal | None:
    """:func:`current_principal` given the request's ``g`` (resolved once by the caller)."""
    principal: Principal | None
    try:
        principal = app_g.principal
    except AttributeError:
        principal = app_g.principal = None
        for authenticator in current_app.extensions.get("casework.authenticators", ()):
            found = authenticator()
            if found is not None:
                principal = app_g.principal = found
                break
    return principal


def route_permission() -> Permission:
    """The one permission the running route declared with :func:`requires`.

    Loaders take it from here, so a route says its permission once.
    """
    declared: Access | None = g.get("casework_access")
    if declared is None or len(declared.permissions) != 1:
        raise RuntimeError("the route must declare exactly one permission to load by it")
    return declared.permissions[0]


def require_principal() -> Principal:
    """The caller, or :class:`Unauthorized`."""
    principal = current_principal()
    if principal is None:
        raise Unauthorized(TOKEN_REQUIRED)
    return principal


def authorise(declared: Access) -> Principal:
    """Check a view's declaration against the caller; record and raise refusals."""
    return _authorise(declared, g._get_current_object())


def _authorise(declared: Access, app_g: Any) -> Principal:
    principal = _principal_of(app_g)
    if principal is None:
        raise Unauthorized(TOKEN_REQUIRED)
    if principal.mfa_pending and not declared.allow_mfa_pending:
        deny(principal, "MFA enrolment must be completed first.")
    missing = [p for p in declared.permissions if not principal.has(p)]
    if missing:
        deny(principal, "Your role does not permit this action.")
    return principal


def deny(principal: Principal | None, detail: str) -> None:
    """Record an ``authz.denied`` entry (committed on its own) and raise 403."""
    for hook in current_app.extensions.get("casework.denial_hooks", []):
        hook(principal)
    raise Forbidden(detail)


def check_every_route_declared(app: Flask) -> None:
    """Refuse to start when any view lacks an access declaration."""
    undeclared = []
    for endpoint, view in app.view_functions.items():
        if endpoint in FRAMEWORK_PUBLIC_ENDPOINTS:
            continue
        view_class = getattr(view, "view_class", None)
        if view_class is not None:
            handlers = [getattr(view_class, m.lower()) for m in view_class.methods or ()]
        else:
            handlers = [view]
        if not all(hasattr(handler, ACCESS_ATTR) for handler in handlers):
            undeclared.append(endpoint)
    if undeclared:
        raise RuntimeError(
            "routes without an access declaration (use @public or @requires): "
            + ", ".join(sorted(undeclared))
        )


def in_scope(principal: Principal, office: str | None) -> bool:
    """Whether ``principal`` may see objects owned by ``office``.

    Staff see their own office only; a case handed to another office changes
    owner, so the sender loses sight of it. Officeless roles (admin, auditor)
    see no office's cases at all.
    """
    return principal.office is not None and office is not None and principal.office == office


# Models that belong to an office name it in this attribute, unless they set
# ``__scope_attribute__`` to another one (e.g. the office a case is owned by).
DEFAULT_SCOPE_ATTRIBUTE = "office_code"


def office_of(obj: object) -> str | None:
    """The office that owns ``obj`` (see :data:`DEFAULT_SCOPE_ATTRIBUTE`)."""
    attribute = getattr(type(obj), "__scope_attribute__", DEFAULT_SCOPE_ATTRIBUTE)
    office: str | None = getattr(obj, attribute)
    return office


def can(principal: Principal, permission: Permission, obj: object) -> bool:
    """Whether ``principal`` holds ``permission`` and ``obj`` is in their office scope."""
    return principal.has(permission) and in_scope(principal, office_of(obj))


def scope_filter(principal: Principal, office_column: Any) -> ColumnElement[bool]:
    """The list twin of :func:`can`: a WHERE clause keeping rows of the caller's office.

    ``office_column`` is the model's owning-office column (``Case.office_code``).
    An officeless caller gets a clause that is always false: they list nothing.
    """
    if principal.office is None:
        return false()
    clause: ColumnElement[bool] = office_column == principal.office
    return clause


def require_can(principal: Principal, permission: Permission, obj: object | None) -> Any:
    """Return ``obj`` when :func:`can` allows it; otherwise raise 404, as for a missing one.

    ``obj`` may be None (not found): the caller then loads and checks in one
    line. A refusal of an existing object is recorded like any other denial,
    but answers 404 so that references cannot be probed.
    """
    if obj is None:
        raise NotFound("No such resource.")
    if not can(principal, permission, obj):
        deny_as_missing(principal)
    return obj


def deny_as_missing(principal: Principal | None) -> None:
    """Record an ``authz.denied`` entry and raise 404 (an out-of-scope object)."""
    for hook in current_app.extensions.get("casework.denial_hooks", []):
        hook(principal)
    raise NotFound("No such resource.")
