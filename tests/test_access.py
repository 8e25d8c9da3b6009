"""Route access declarations: deny by default, checked at start-up."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from casework import create_app
from casework.authz.access import (
    TOKEN_REQUIRED,
    Principal,
    check_every_route_declared,
    in_scope,
    public,
    register_authenticator,
    require_principal,
    requires,
)
from casework.authz.permissions import ROLE_PERMISSIONS, Permission
from casework.errors import Unauthorized


def test_every_route_of_the_real_app_is_declared(app: Flask) -> None:
    check_every_route_declared(app)


def test_undeclared_route_stops_start_up(app_config: dict[str, Any]) -> None:
    application = create_app(app_config)

    @application.route("/_test/open")
    def _open() -> str:
        return "x"

    with pytest.raises(RuntimeError, match="_open"):
        check_every_route_declared(application)


@pytest.fixture
def guarded(app_config: dict[str, Any]) -> Flask:
    application = create_app(app_config)
    register_authenticator(application, lambda: None)

    @application.route("/_test/public")
    @public
    def _public() -> dict[str, bool]:
        return {"ok": True}

    @application.route("/_test/private")
    @requires(Permission.CASES_READ)
    def _private() -> dict[str, bool]:
        return {"ok": True}

    check_every_route_declared(application)
    return application


def test_anonymous_is_refused_with_401(guarded: Flask) -> None:
    client = guarded.test_client()
    assert client.get("/_test/public").status_code == 200
    response = client.get("/_test/private")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["detail"] == TOKEN_REQUIRED


def test_require_principal_refuses_an_anonymous_caller_alike(guarded: Flask) -> None:
    with guarded.test_request_context("/_test/private"), pytest.raises(Unauthorized) as refused:
        require_principal()
    assert refused.value.detail == TOKEN_REQUIRED


def test_scope_is_the_own_office_only() -> None:
    caseworker = Principal.for_role("caseworker", user_id="u1", office="kbl")
    admin = Principal.for_role("admin", user_id="u2", office=None)
    assert in_scope(caseworker, "kbl")
    assert not in_scope(caseworker, "isb")
    assert not in_scope(admin, "kbl")
    assert not in_scope(caseworker, None)


def test_admin_and_auditor_hold_no_case_permission() -> None:
    case_permissions = {
        p
        for p in Permission
        if p.value.split(":")[0]
        in {"cases", "vetting", "medical", "determination", "resettlement", "handoff", "consent"}
    }
    assert not ROLE_PERMISSIONS["admin"] & case_permissions
    assert not ROLE_PERMISSIONS["auditor"] & case_permissions
