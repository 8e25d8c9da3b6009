"""Office scope: ``can``, its list twin, and 404 for out-of-scope objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask, request
from sqlalchemy import select

from casework import create_app
from casework.auth.models import User
from casework.authz.access import (
    Principal,
    can,
    office_of,
    register_authenticator,
    require_can,
    requires,
    scope_filter,
)
from casework.authz.permissions import Permission
from casework.db import get_db

CASEWORKER = Principal.for_role("caseworker", user_id="u1", office="kbl")
ADMIN = Principal.for_role("admin", user_id="u2", office=None)
ADMIN_WITH_OFFICE = Principal.for_role("admin", user_id="u3", office="kbl")


@dataclass
class Thing:
    office_code: str | None


@dataclass
class HandedThing:
    __scope_attribute__ = "owner"
    owner: str


def test_can_needs_permission_and_scope() -> None:
    assert can(CASEWORKER, Permission.CASES_READ, Thing("kbl"))
    assert not can(CASEWORKER, Permission.CASES_READ, Thing("isb"))
    assert not can(CASEWORKER, Permission.CASES_READ, Thing(None))
    assert not can(CASEWORKER, Permission.VETTING_DECIDE, Thing("kbl"))
    assert not can(ADMIN, Permission.CASES_READ, Thing("kbl"))
    assert not can(ADMIN_WITH_OFFICE, Permission.CASES_READ, Thing("kbl"))


def test_scope_attribute_can_be_renamed() -> None:
    assert office_of(HandedThing("isb")) == "isb"
    assert can(CASEWORKER, Permission.CASES_READ, HandedThing("kbl"))


def test_scope_filter_keeps_own_office_rows(
    app: Flask, db_session: Any, make_office: Any, make_user: Any
) -> None:
    make_office("kbl")
    make_office("isb")
    mine, theirs = make_user("caseworker", "kbl"), make_user("caseworker", "isb")
    query = select(User.id).where(scope_filter(CASEWORKER, User.office_code))
    found = set(db_session.scalars(query))
    assert mine.id in found
    assert theirs.id not in found
    nothing = select(User.id).where(scope_filter(ADMIN, User.office_code))
    assert list(db_session.scalars(nothing)) == []


@pytest.fixture
def scoped_app(app_config: dict[str, Any]) -> Flask:
    """A route that loads an object of an office and checks it with ``require_can``."""
    application = create_app(app_config)
    application.config["TESTING"] = True
    things = {"a": Thing("kbl"), "b": Thing("isb")}
    callers = {"cw": CASEWORKER, "admin": ADMIN}
    register_authenticator(
        application,
        lambda: callers.get(request.headers.get("X-Caller", "")),
    )
    recorded: list[Any] = []
    application.extensions["casework.denial_hooks"] = [recorded.append]
    application.extensions["recorded"] = recorded

    @application.route("/_test/things/<key>")
    @requires(Permission.CASES_READ)
    def _thing(key: str) -> dict[str, str]:
        from casework.authz.access import require_principal

        thing = require_can(require_principal(), Permission.CASES_READ, things.get(key))
        return {"office": thing.office_code}

    return application


def test_out_of_scope_answers_404_like_missing_and_is_recorded(scoped_app: Flask) -> None:
    client = scoped_app.test_client()
    own = client.get("/_test/things/a", headers={"X-Caller": "cw"})
    other = client.get("/_test/things/b", headers={"X-Caller": "cw"})
    missing = client.get("/_test/things/zzz", headers={"X-Caller": "cw"})
    assert own.status_code == 200
    assert other.status_code == missing.status_code == 404
    assert other.get_json()["detail"] == missing.get_json()["detail"]
    assert scoped_app.extensions["recorded"] == [CASEWORKER]  # the refusal, not the miss
    assert client.get("/_test/things/a", headers={"X-Caller": "admin"}).status_code == 403
    get_db(scoped_app).engine.dispose()
