"""The permission matrix, generated from the application's URL map.

Every route x every staff role x (own office, other office, no office), each
with a real user and a real token (MFA answered where the role requires it),
against the outcome the route's declared ``Access`` and the permission table
predict: a missing permission answers 403, an office-scoped object seen from
outside its office answers 404, anything else the entry's success status.
Also generated: every route refuses an anonymous caller (401) and an
MFA-enrolment token (403) unless it allows one. Officeless roles in an office,
and office roles without one, cannot be created through the API; they are
built directly so that a misconfigured account is shown to gain nothing.

A route without an entry in ``ENTRIES`` fails. To add yours, write one line:
the success status, how to build the request (path values, JSON body, headers)
from a :class:`World` whose ``office`` owns whatever you create, and
``scoped=True`` when the route reaches an object of an office.
"""

from __future__ import annotations

import itertools
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.routing import Rule

from casework import create_app
from casework.auth.models import User
from casework.authz.access import ACCESS_ATTR, Access
from casework.authz.permissions import (
    OFFICELESS_ROLES,
    STAFF_ROLES,
    Permission,
    permissions_for,
)
from casework.offices.models import Office
from tests.auth.helpers import TEST_PASSWORD, create_user, login_headers
from tests.cases import matrix as cases_matrix
from tests.handoff import matrix as handoff_matrix
from tests.reports import matrix as reports_matrix
from tests.sync import matrix as sync_matrix
from tests.vetting import matrix as vetting_matrix
from tests.workflow import matrix as workflow_matrix

PLACES = ("own", "other", "none")
# Routes below these prefixes carry case contents: admins and auditors must be
# refused there whatever the permission table says (403, or 404 out of scope).
CASE_CONTENT_PREFIXES = (
    "/api/v1/cases",
    "/api/v1/households",
    "/api/v1/workflow/cases",
    "/api/v1/erasure-requests",
)
# Routes anyone may call. A new public route must be added here on purpose.
PUBLIC = frozenset(
    {
        "GET /healthz",
        "GET /readyz",
        "POST /api/v1/auth/login",
        "POST /api/v1/devices",
        "GET /api/v1/docs/assets/<path:filename>",
        "GET /api/v1/openapi.json",
        "GET /api/v1/audit/public-key",
        "GET /api/v1/audit/proofs/consistency",
        "GET /api/v1/audit/checkpoints/latest",
        "GET /api/v1/audit/keys",
        "POST /api/v1/audit/cosignatures",
        "GET /api/v1/audit/tiles/tile/<int:level>/<path:index>",
        "GET /api/v1/docs",
        "GET /static/<path:filename>",
    }
)


@dataclass
class World:
    """What an entry may use to build its request; ``office`` owns the objects it makes."""

    app: Flask
    session: Session
    office: str
    other_office: str
    _count: Iterator[int] = field(default_factory=itertools.count)
    #: The caller's role, for the few objects whose kind depends on it (alerts).
    role: str = ""

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{next(self._count)}-{uuid.uuid4().hex[:6]}"

    def user(self, role: str = "caseworker", office: str | None = "") -> User:
        """A target account (another person than the caller)."""
        home = self.office if office == "" else office
        return create_user(self.app, self.session, role, home, mfa=False)


@dataclass(frozen=True)
class Call:
    path: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    ok: int | tuple[int, ...]
    call: Callable[[World], Call] = lambda _world: Call()
    scoped: bool = False
    # Holders of alerts:cross-office reach the object from anywhere (it spans offices).
    cross_office: bool = False

    @property
    def ok_statuses(self) -> tuple[int, ...]:
        return self.ok if isinstance(self.ok, tuple) else (self.ok,)


V1 = {"If-Match": '"v1"'}


def _witness_vkey() -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from casework.audit.witness import WitnessKey

    name = f"witness.test/{uuid.uuid4().hex[:8]}"
    return WitnessKey(name, Ed25519PrivateKey.generate().public_key()).encode()


def _new_user(w: World) -> Call:
    body = {"username": w.unique("new"), "password": TEST_PASSWORD, "role": "caseworker"}
    return Call(json={**body, "office": w.office})


def _case(body: Any = None, headers: dict[str, str] | None = None) -> Callable[[World], Call]:
    """A call on a new case of the world's office."""
    return lambda w: Call({"reference": cases_matrix.new_case(w)}, body, headers or {})


# "METHOD rule" -> Entry. One line per route; group by feature.
ENTRIES: dict[str, Entry] = {
    # identity and access (issue 5)
    "POST /api/v1/auth/logout": Entry(204),
    "GET /api/v1/auth/me": Entry(200),
    # every caller here is enrolled: re-enrolling and removing also need the current
    # code, so 422 proves the caller got past access control (200 with an enrolment token)
    "POST /api/v1/auth/mfa/enrol": Entry(
        (200, 422), lambda w: Call(json={"password": TEST_PASSWORD})
    ),
    "DELETE /api/v1/auth/mfa": Entry(422, lambda w: Call(json={"password": TEST_PASSWORD})),
    # nothing pending to confirm: 409 proves the caller got past access control
    "POST /api/v1/auth/mfa/confirm": Entry(409, lambda w: Call(json={"totp": "000000"})),
    "GET /api/v1/users": Entry(200),
    "POST /api/v1/users": Entry(201, _new_user),
    "GET /api/v1/users/<uuid:user_id>": Entry(200, lambda w: Call({"user_id": w.user().id})),
    "PATCH /api/v1/users/<uuid:user_id>": Entry(
        200, lambda w: Call({"user_id": w.user().id}, {"active": False}, V1)
    ),
    "POST /api/v1/users/<uuid:user_id>/reset-password": Entry(
        204, lambda w: Call({"user_id": w.user().id}, {"password": "new-" + TEST_PASSWORD}, V1)
    ),
    "POST /api/v1/users/<uuid:user_id>/reset-mfa": Entry(
        200, lambda w: Call({"user_id": w.user().id}, None, V1)
    ),
    "GET /api/v1/offices": Entry(200),
    # code lists (issue 23): every signed-in caller
    "GET /api/v1/codes": Entry(200),
    "GET /api/v1/codes/<string:name>": Entry(200, lambda w: Call({"name": "stages"})),
    "POST /api/v1/offices": Entry(
        201, lambda w: Call(json={"code": w.unique("o"), "name": "New", "country_code": "KEN"})
    ),
    "GET /api/v1/offices/<code>": Entry(200, lambda w: Call({"code": w.office})),
    "PATCH /api/v1/offices/<code>": Entry(
        200, lambda w: Call({"code": w.office}, {"name": "X", "mfa_exempt": True}, V1)
    ),
    # access log (issue 4); the caller's login signed a checkpoint covering seq 1
    "GET /api/v1/audit/events": Entry(200),
    "GET /api/v1/audit/actors/<string:actor>": Entry(
        200, lambda w: Call({"actor": str(w.user().id)})
    ),
    "GET /api/v1/audit/events/<int:seq>/proof": Entry(200, lambda w: Call({"seq": 1})),
    "GET /api/v1/audit/export": Entry(200),
    "GET /api/v1/audit/verify": Entry(200),
    "POST /api/v1/audit/checkpoints": Entry(201),
    "POST /api/v1/audit/witnesses": Entry(201, lambda w: Call(json={"vkey": _witness_vkey()})),
    # cases (issue 6); 403 for intake by staff without an office
    "GET /api/v1/cases": Entry(200),
    "POST /api/v1/cases": Entry((201, 403), lambda w: Call(json=cases_matrix.INTAKE)),
    "POST /api/v1/cases/search": Entry(200, lambda w: Call(json={"document_number": "X1"})),
    "GET /api/v1/cases/<case_ref:reference>": Entry(200, _case(), scoped=True),
    "PATCH /api/v1/cases/<case_ref:reference>": Entry(
        200, _case({"specific_needs": ["SC-UC"]}, V1), scoped=True
    ),
    # erasure by two people (issue 17): the request is by another supervisor of the office
    "POST /api/v1/cases/<case_ref:reference>/erasure-requests": Entry(
        201, _case({"reason": "Matrix."}), scoped=True
    ),
    "GET /api/v1/erasure-requests": Entry(200),
    "GET /api/v1/erasure-requests/<uuid:request_id>": Entry(
        200, lambda w: Call({"request_id": cases_matrix.erasure_request(w)}), scoped=True
    ),
    "POST /api/v1/erasure-requests/<uuid:request_id>/approve": Entry(
        200, lambda w: Call({"request_id": cases_matrix.erasure_request(w)}, None, V1), scoped=True
    ),
    "POST /api/v1/erasure-requests/<uuid:request_id>/reject": Entry(
        200, lambda w: Call({"request_id": cases_matrix.erasure_request(w)}, None, V1), scoped=True
    ),
    "GET /api/v1/cases/<case_ref:reference>/history": Entry(200, _case(), scoped=True),
    "POST /api/v1/cases/<case_ref:reference>/duplicates": Entry(200, _case(), scoped=True),
    "GET /api/v1/alerts": Entry(200),
    # workflow states and transitions (issue 8)
    "GET /api/v1/workflow": Entry(200),
    "POST /api/v1/cases/<case_ref:reference>/transitions": Entry(
        200, _case({"process": "case_stage", "to": "vetting"}, V1), scoped=True
    ),
    "PUT /api/v1/cases/<case_ref:reference>/resettlement/submission": Entry(
        200,
        lambda w: Call(
            {"reference": workflow_matrix.case_preparing_submission(w)}, {"priority": "normal"}, V1
        ),
        scoped=True,
    ),
    "PUT /api/v1/cases/<case_ref:reference>/best-interests-assessment": Entry(
        200, _case({"completed_on": "2025-01-15", "note": "Assessed."}, V1), scoped=True
    ),
    # vetting interviews and checks (issue 8)
    "GET /api/v1/cases/<case_ref:reference>/interviews": Entry(
        200, lambda w: Call(vetting_matrix.case_path(w)), scoped=True
    ),
    "POST /api/v1/cases/<case_ref:reference>/interviews": Entry(
        201, lambda w: Call(*vetting_matrix.interview_call(w)), scoped=True
    ),
    "PATCH /api/v1/cases/<case_ref:reference>/interviews/<uuid:interview_id>": Entry(
        200, lambda w: Call(vetting_matrix.interview_path(w), {"notes": "Matrix."}, V1), scoped=True
    ),
    "GET /api/v1/cases/<case_ref:reference>/checks": Entry(200, _case(), scoped=True),
    "PUT /api/v1/cases/<case_ref:reference>/checks/<any(identity_verification,"
    "security_screening,medical_examination,credibility_assessment):check>": Entry(
        200,
        lambda w: Call(
            {**vetting_matrix.case_path(w), "check": "security_screening"},
            {"status": "cleared"},
            V1,
        ),
        scoped=True,
    ),
    # office staff: an alert inside their office; integrity officers: one between offices
    "POST /api/v1/alerts/<uuid:alert_id>/review": Entry(
        201,
        lambda w: Call(vetting_matrix.alert_path(w), {"outcome": "distinct_persons"}, V1),
        scoped=True,
        cross_office=True,
    ),
    "GET /api/v1/alerts/<uuid:alert_id>": Entry(
        200, lambda w: Call(vetting_matrix.alert_path(w)), scoped=True, cross_office=True
    ),
    # consent, partners and hand-off (issue 8)
    "GET /api/v1/cases/<case_ref:reference>/consents": Entry(200, _case(), scoped=True),
    "POST /api/v1/cases/<case_ref:reference>/consents": Entry(
        201, lambda w: Call(*handoff_matrix.consent_call(w), V1), scoped=True
    ),
    "POST /api/v1/cases/<case_ref:reference>/consents/<uuid:consent_id>/withdraw": Entry(
        200, lambda w: Call(handoff_matrix.consent_path(w), None, V1), scoped=True
    ),
    "POST /api/v1/cases/<case_ref:reference>/handoffs": Entry(
        201,
        lambda w: Call(
            {"reference": cases_matrix.new_case(w)},
            {"kind": "office", "office": w.other_office},
            V1,
        ),
        scoped=True,
    ),
    "GET /api/v1/cases/<case_ref:reference>/handoffs/<uuid:handoff_id>/package": Entry(
        200, lambda w: Call(handoff_matrix.package_path(w)), scoped=True
    ),
    "POST /api/v1/cases/<case_ref:reference>/handoffs/<uuid:handoff_id>/package/acknowledge": (
        Entry(204, lambda w: Call(handoff_matrix.package_path(w)), scoped=True)
    ),
    "GET /api/v1/handoffs": Entry(200),
    # field-office sync (issue 19): pull and push also need a device signature, so a
    # staff token alone is refused (401) even where the role holds the permission
    "GET /api/v1/devices": Entry(200),
    "POST /api/v1/devices/enrolment-codes": Entry(
        201, lambda w: Call(json={"office": w.office, "label": "Laptop"})
    ),
    "POST /api/v1/devices/<uuid:device_id>/revoke": Entry(
        200, lambda w: Call({"device_id": sync_matrix.device(w)})
    ),
    "GET /api/v1/sync/changes": Entry(401),
    "POST /api/v1/sync/push": Entry(
        401,
        lambda w: Call(
            json={
                "mutations": [
                    {
                        "mutation_id": str(uuid.uuid4()),
                        "device_seq": 1,
                        "op": "create",
                        "changes": {},
                    }
                ]
            }
        ),
    ),
    "GET /api/v1/sync/conflicts": Entry(200),
    "GET /api/v1/sync/conflicts/<uuid:conflict_id>": Entry(
        200, lambda w: Call({"conflict_id": sync_matrix.conflict(w)}), scoped=True
    ),
    "POST /api/v1/sync/conflicts/<uuid:conflict_id>/resolve": Entry(
        200,
        lambda w: Call({"conflict_id": sync_matrix.conflict(w)}, {"keep": "server"}, V1),
        scoped=True,
    ),
    "GET /api/v1/partners": Entry(200),
    "POST /api/v1/partners": Entry(
        201,
        lambda w: Call(
            json={"code": w.unique("p"), "name": "P", "public_key": handoff_matrix.public_key()}
        ),
    ),
    "POST /api/v1/partners/<code>/deactivate": Entry(
        200, lambda w: Call({"code": handoff_matrix.partner(w).code}, None, V1)
    ),
    "GET /api/v1/partners/<code>": Entry(
        200, lambda w: Call({"code": handoff_matrix.partner(w).code})
    ),
    # reports and retention (issue 22); 403 for office staff without an office
    "GET /api/v1/reports": Entry(200),
    "GET /api/v1/reports/<name>": Entry(
        (200, 403), lambda w: Call({"name": "cases-by-office-stage"})
    ),
    "GET /api/v1/retention-policy": Entry(200),
    "PUT /api/v1/retention-policy": Entry(
        200,
        lambda w: Call(json={"rules": {"closed": 1825}}, headers=reports_matrix.current_version(w)),
    ),
    "POST /api/v1/retention-policy/approve": Entry(
        200, lambda w: Call(json={}, headers=reports_matrix.pending_proposal(w))
    ),
    "PUT /api/v1/cases/<case_ref:reference>/legal-hold": Entry(
        200, _case({"hold": True, "reason": "Court order."}, V1), scoped=True
    ),
}


# --- reading the URL map -------------------------------------------------------


@dataclass(frozen=True)
class Route:
    key: str
    rule: Rule
    method: str
    access: Access | None

    def __str__(self) -> str:
        return self.key


def routes_of(app: Flask) -> list[Route]:
    found = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            handler = getattr(view_class, method.lower()) if view_class else view
            access = getattr(handler, ACCESS_ATTR, None)
            found.append(Route(f"{method} {rule.rule}", rule, method, access))
    return sorted(found, key=lambda r: r.key)


def guarded(app: Flask) -> list[Route]:
    return [r for r in routes_of(app) if r.key not in PUBLIC]


def _collection_app() -> Flask:
    """An application used only to read the URL map while collecting tests."""
    folder = tempfile.mkdtemp(prefix="casework-matrix-")
    return create_app({"database_url": "sqlite://", "instance_path": folder})


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = set(metafunc.fixturenames)
    if not names & {"matrix_case", "guarded_route"}:
        return
    routes = guarded(_collection_app())
    if "matrix_case" in names:
        cases = list(itertools.product(routes, STAFF_ROLES, PLACES))
        ids = [f"{route} | {role}@{place}" for route, role, place in cases]
        metafunc.parametrize("matrix_case", cases, ids=ids)
    if "guarded_route" in names:
        metafunc.parametrize("guarded_route", routes, ids=[str(r) for r in routes])


# --- expectations ------------------------------------------------------------------


def expected(route: Route, entry: Entry, role: str, place: str) -> tuple[int, ...]:
    assert route.access is not None
    held = permissions_for(role)
    if any(p not in held for p in route.access.permissions):
        return (403,)
    if entry.cross_office and Permission.ALERTS_CROSS_OFFICE in held:
        return entry.ok_statuses
    if entry.scoped and place != "own":
        return (404,)
    return entry.ok_statuses


def entry_for(route: Route) -> Entry:
    entry = ENTRIES.get(route.key)
    if entry is None:
        pytest.fail(f"no permission-matrix entry for {route.key!r}: add one to ENTRIES")
    return entry


@pytest.fixture
def world(app: Flask, db_session: Session) -> World:
    offices = ("mx-own", "mx-other")
    for code in offices:
        db_session.add(Office(code=code, name=f"Matrix {code}", country_code="UGA"))
    db_session.flush()
    return World(app, db_session, *offices)


def send(client: FlaskClient, app: Flask, route: Route, call: Call, headers: dict[str, str]) -> Any:
    adapter = app.url_map.bind("localhost")
    path = adapter.build(route.rule.endpoint, call.path, method=route.method)
    return client.open(
        path,
        method=route.method,
        json=call.json,
        query_string=call.query,
        headers={**headers, **call.headers},
    )


def _office_for(world: World, place: str) -> str | None:
    return {"own": world.office, "other": world.other_office, "none": None}[place]


# --- the tests ------------------------------------------------------------------------


def test_matrix(
    app: Flask, client: FlaskClient, world: World, matrix_case: tuple[Route, str, str]
) -> None:
    route, role, place = matrix_case
    entry = entry_for(route)
    caller = create_user(app, world.session, role, _office_for(world, place))
    headers = login_headers(app, client, world.session, caller)
    world.role = role
    response = send(client, app, route, entry.call(world), headers)
    allowed = expected(route, entry, role, place)
    assert response.status_code in allowed, (route.key, role, place, response.get_json())
    if route.rule.rule.startswith(CASE_CONTENT_PREFIXES) and role in OFFICELESS_ROLES:
        assert response.status_code in (403, 404)


def test_anonymous_is_refused(
    app: Flask, client: FlaskClient, world: World, guarded_route: Route
) -> None:
    entry = entry_for(guarded_route)
    response = send(client, app, guarded_route, entry.call(world), {})
    assert response.status_code == 401


def test_enrolment_token_reaches_only_enrolment(
    app: Flask, client: FlaskClient, world: World, guarded_route: Route
) -> None:
    entry = entry_for(guarded_route)
    caller = create_user(app, world.session, "supervisor", world.office, mfa=False)
    answer = client.post(
        "/api/v1/auth/login", json={"username": caller.username, "password": TEST_PASSWORD}
    ).get_json()
    assert answer["mfa_enrolment_required"] is True
    headers = {"Authorization": f"Bearer {answer['token']}"}
    response = send(client, app, guarded_route, entry.call(world), headers)
    assert guarded_route.access is not None
    if guarded_route.access.allow_mfa_pending:
        assert response.status_code in entry.ok_statuses
    else:
        assert response.status_code == 403


def test_every_route_is_declared_and_has_an_entry(app: Flask) -> None:
    routes = routes_of(app)
    undeclared = [r.key for r in routes if r.access is None and r.key not in PUBLIC]
    assert not undeclared
    wrongly_public = [
        r.key for r in routes if r.access is not None and r.access.public and r.key not in PUBLIC
    ]
    assert not wrongly_public, "public routes must be listed in PUBLIC"
    missing = [r.key for r in guarded(app) if r.key not in ENTRIES]
    assert not missing, f"add permission-matrix entries for {missing}"
    stale = (set(ENTRIES) | PUBLIC) - {r.key for r in routes}
    assert not stale, f"entries for routes that no longer exist: {sorted(stale)}"


def test_matrix_size(app: Flask) -> None:
    """The number of combinations (reported in the issue note)."""
    routes = guarded(app)
    combinations = len(routes) * len(STAFF_ROLES) * len(PLACES)
    assert combinations == len(ENTRIES) * len(STAFF_ROLES) * len(PLACES)
    print(
        f"\npermission matrix: {len(routes)} routes x {len(STAFF_ROLES)} roles x "
        f"{len(PLACES)} places = {combinations} combinations "
        f"(+{2 * len(routes)} anonymous and enrolment-token checks)"
    )
