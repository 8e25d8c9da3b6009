"""Fuzzing every operation of ``/api/v1/openapi.json`` with schemathesis, in-process.

The targets are generated from the document, so operations of features still
being built are fuzzed as soon as they appear in it: one test per operation and
per role that may call it, the roles derived from the view's declared access
(``@requires``) and the permission table; public operations are called
anonymously. Each caller is a real user in an office that exists, signed in
through the API with a real bearer token (MFA answered where the role needs
it). Operations that also accept a token still awaiting MFA enrolment are
fuzzed once more with such a token.

Checks: no 5xx, status codes, content types, headers and bodies as documented,
schema-violating input refused (``negative_data_rejection``), the operation
refused without a token or with a forged one (``ignored_auth``), and every
status listed explicitly on the operation except the few any JSON route may
answer (:data:`GENERIC_STATUSES`): the document's ``default`` response would
otherwise make any status "documented".

Path parameters naming an object (a user, an office, a case) are random in
half of the valid examples, which must answer a documented 404, and a real
object of the caller's office in the other half, sent with its current ETag
when the operation needs ``If-Match``, so that the fuzzer also gets past the
lookup. All examples of one test share the test's rolled-back transaction.

Besides the random examples, schemathesis sends each operation's boundary
cases (its coverage phase: every constraint just met and just broken), by
default as the operation's first caller only. ``CASEWORK_FUZZ_EXAMPLES`` sets
the number of random examples per test (``make fuzz``: 1000), makes the run
random and sends the boundary cases as every caller; by default 10, derandomized,
so that the suite stays fast and a failure reproduces.

Failures in features whose owners are still at work are listed in
:data:`KNOWN_ISSUES`, which skips only the failing check of that operation.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
import zlib
from base64 import b64encode
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckContext
from schemathesis.generation.hypothesis.builder import ApiOperationMark
from schemathesis.generation.meta import TestPhase
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from casework import create_app
from casework.auth.models import AccessToken, User
from casework.auth.settings import mfa_required
from casework.auth.tokens import hash_token
from casework.authz.access import ACCESS_ATTR, Access
from casework.authz.permissions import OFFICELESS_ROLES, STAFF_ROLES, Permission, permissions_for
from casework.cases.codes import Stage
from casework.cases.models import Case
from casework.offices.models import Office
from tests.auth.helpers import TEST_PASSWORD, create_user, login_headers

DOCUMENT = "/api/v1/openapi.json"
HTTP_METHODS = ("get", "put", "post", "patch", "delete")
EXAMPLES = int(os.environ.get("CASEWORK_FUZZ_EXAMPLES") or 0)
# Statuses any JSON route may answer before its view runs; the ``default``
# (problem+json) response documents them. Everything else must be listed.
GENERIC_STATUSES = frozenset({400, 413, 415})
HOME_OFFICE, OTHER_OFFICE = "fz-home", "fz-other"
SOON = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).isoformat()


# --- what to fuzz, read from the document and the views' declarations -----------------


@dataclass(frozen=True)
class Target:
    """One operation called by one kind of caller."""

    method: str
    path: str  # the OpenAPI template, e.g. /api/v1/users/{user_id}
    role: str | None  # None: anonymous
    mfa_pending: bool = False
    # The first caller of an operation also sends its boundary cases (coverage phase).
    first: bool = True

    @property
    def caller(self) -> str:
        return (self.role or "anonymous") + ("+mfa-pending" if self.mfa_pending else "")

    def __str__(self) -> str:
        return f"{self.method} {self.path} as {self.caller}"


def openapi_path(rule: str) -> str:
    """``/users/<uuid:user_id>`` -> ``/users/{user_id}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def declared_access(app: Flask) -> dict[tuple[str, str], Access]:
    """(METHOD, OpenAPI path) -> the access the view declares, for every route."""
    found = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            handler = getattr(view_class, method.lower()) if view_class else view
            access = getattr(handler, ACCESS_ATTR, None)
            if access is not None:
                found[(method, openapi_path(rule.rule))] = access
    return found


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def callers(access: Access, needs_mfa: Callable[[str], bool]) -> list[tuple[str | None, bool]]:
    """(role, MFA pending) of everyone who may call a view so declared.

    A pending token is fuzzed with the first role that needs MFA (only such a
    role can hold one). An operation no staff role may call (a device's) is
    fuzzed anonymously, which must answer 401 throughout.
    """
    if access.public:
        return [(None, False)]
    needed = set(access.permissions)
    roles = [r for r in STAFF_ROLES if needed <= permissions_for(r)]
    found: list[tuple[str | None, bool]] = [(role, False) for role in roles]
    if access.allow_mfa_pending:
        found += [(role, True) for role in roles if needs_mfa(role)][:1]
    return found or [(None, False)]


def targets(app: Flask) -> list[Target]:
    document = app.test_client().get(DOCUMENT).get_json()
    access = declared_access(app)
    with app.app_context():
        mfa_roles = {role for role in STAFF_ROLES if mfa_required(role)}
    found = []
    for method, path, _operation in operations(document):
        declared = access.get((method, path))
        if declared is None:  # test_document_matches_declarations names it
            found.append(Target(method, path, None))
            continue
        found += [
            Target(method, path, role, pending, first=index == 0)
            for index, (role, pending) in enumerate(callers(declared, mfa_roles.__contains__))
        ]
    return found


def _collection_app() -> Flask:
    """An application used only to read the document and the views while collecting.

    Requests of the tests go to the session's migrated application instead
    (``app=`` on every call); the two serve the same document
    (``test_collected_document_is_served``).
    """
    with tempfile.TemporaryDirectory(prefix="casework-fuzz-") as folder:
        return create_app({"database_url": "sqlite://", "instance_path": folder})


COLLECTION_APP = _collection_app()
# schemathesis' lazy loader (``schemathesis.pytest.from_fixture``) reads
# ``Node._nodeid``, which pytest 9.2 no longer has; the schema is loaded here instead.
# Every call carries the caller's real token, so generated (and negated) Authorization
# headers would only be overwritten; ``ignored_auth`` probes without and with a forged one.
CONFIG = schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}})
SCHEMA = schemathesis.openapi.from_wsgi(DOCUMENT, COLLECTION_APP, config=CONFIG)
TARGETS = targets(COLLECTION_APP)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each operation's test, once per caller (schemathesis calls this per operation)."""
    if "target" not in metafunc.fixturenames:
        return
    operation = ApiOperationMark.get(metafunc.function)
    if operation is None:
        return  # a plain test of this module that names its own target
    found = [t for t in TARGETS if (t.method, t.path) == (operation.method.upper(), operation.path)]
    metafunc.parametrize("target", found, ids=[t.caller for t in found], indirect=True)


# --- the world each test fuzzes in ------------------------------------------------------


@dataclass
class World:
    """Offices, the caller and the real objects path parameters may name."""

    app: Flask
    client: FlaskClient
    session: Session
    target: Target
    headers: dict[str, str] = field(default_factory=dict)
    caller: User | None = None
    _real: dict[str, str] = field(default_factory=dict)

    def sign_in(self) -> None:
        """Create the caller and sign in; anonymous targets send no token."""
        role = self.target.role
        if role is None:
            return
        office = None if role in OFFICELESS_ROLES else HOME_OFFICE
        with self.app.app_context():
            enrolled = mfa_required(role) and not self.target.mfa_pending
        self.caller = create_user(self.app, self.session, role, office, mfa=enrolled)
        self.headers = self._login(self.caller)

    def _login(self, user: User) -> dict[str, str]:
        if self.target.mfa_pending:
            return self._pending_login(user)
        return login_headers(self.app, self.client, self.session, user)

    def _pending_login(self, user: User) -> dict[str, str]:
        body = {"username": user.username, "password": TEST_PASSWORD}
        answer = self.client.post("/api/v1/auth/login", json=body).get_json()
        assert answer["mfa_enrolment_required"] is True, answer
        return {"Authorization": f"Bearer {answer['token']}"}

    def stay_signed_in(self) -> None:
        """Sign in again when the example ended the caller's session (logout)."""
        if self.caller is None:
            return
        token = self.headers["Authorization"].removeprefix("Bearer ")
        revoked = self.session.scalar(
            select(AccessToken.revoked_at).where(AccessToken.token_hash == hash_token(token))
        )
        if revoked is not None:
            self.headers = self._login(self.caller)

    def real_value(self, name: str) -> str | None:
        """A real object for the path parameter ``name``, made on first use; None if unknown."""
        if name not in self._real:
            maker = REAL_OBJECTS.get(name)
            value = maker(self) if maker is not None else None
            if value is None:
                return None
            self._real[name] = value
        return self._real[name]


def _real_user(world: World) -> str:
    return str(create_user(world.app, world.session, "caseworker", HOME_OFFICE, mfa=False).id)


def _real_case(world: World) -> str | None:
    """A case of the home office, registered through the API by one of its caseworkers."""
    clerk = create_user(world.app, world.session, "caseworker", HOME_OFFICE, mfa=False)
    headers = login_headers(world.app, world.client, world.session, clerk)
    body = _household(seed=7)
    response = world.client.post("/api/v1/cases", json=body, headers=headers)
    if response.status_code != 201:
        warnings.warn(
            f"fuzz: could not register a case ({response.status_code}); "
            "case references stay random",
            stacklevel=2,
        )
        return None
    reference: str = response.get_json()["reference"]
    return reference


def _real_entry(_world: World) -> str:
    return "1"  # the first access-log entry of the test's transaction (a sign-in)


def _staff(world: World, role: str, office: str | None = HOME_OFFICE) -> dict[str, str]:
    """Headers of a new signed-in staff member, to make objects the caller may not."""
    user = create_user(world.app, world.session, role, office, mfa=mfa_needed(world, role))
    return login_headers(world.app, world.client, world.session, user)


def mfa_needed(world: World, role: str) -> bool:
    with world.app.app_context():
        return mfa_required(role)


def _made_on_case(
    world: World,
    role: str,
    collection: str,
    body: Callable[[dict[str, Any]], dict[str, Any]],
) -> str | None:
    """POST ``body(case)`` to ``collection`` of the real case as a new ``role`` of its office,
    with the case's ETag; the new object's id, or None (with a warning) so the id stays random.
    """
    reference = world.real_value("reference")
    if reference is None:
        return None
    headers = _staff(world, role)
    case = world.client.get(f"/api/v1/cases/{reference}", headers=headers)
    made = world.client.post(
        f"/api/v1/cases/{reference}/{collection}",
        json=body(case.get_json()),
        headers={**headers, "If-Match": case.headers["ETag"]},
    )
    if made.status_code != 201:
        warnings.warn(f"fuzz: could not make {collection} ({made.status_code})", stacklevel=2)
        return None
    made_id: str = made.get_json()["id"]
    return made_id


def _first_member(case: dict[str, Any]) -> str:
    member_id: str = case["members"][0]["id"]
    return member_id


def _real_interview(world: World) -> str | None:
    """An interview scheduled on the real case, moved to the vetting stage for it."""
    world.session.execute(
        update(Case)
        .where(Case.reference == world.real_value("reference"))
        .values(stage=Stage.VETTING.value)
    )
    return _made_on_case(
        world,
        "vetting_officer",
        "interviews",
        lambda case: {"members": [_first_member(case)], "scheduled_for": SOON},
    )


def _real_consent(world: World) -> str | None:
    return _made_on_case(
        world,
        "caseworker",
        "consents",
        lambda case: {
            "purpose": "referral",
            "recipients": [OTHER_OFFICE],
            "given_by": _first_member(case),
            "given_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
            "fields": ["members.relationship"],
        },
    )


def _real_handoff(world: World) -> str | None:
    """A requested hand-off of the real case to the other office."""
    return _made_on_case(
        world, "caseworker", "handoffs", lambda _case: {"kind": "office", "office": OTHER_OFFICE}
    )


def _real_alert(world: World) -> str | None:
    """A duplicate alert between offices: the real case's household registered again in the
    other office, found by an integrity officer's listing (which runs the cross-office scan)."""
    if world.real_value("reference") is None:
        return None
    stranger = _staff(world, "caseworker", OTHER_OFFICE)
    again = world.client.post("/api/v1/cases", json=_household(seed=7), headers=stranger)
    if again.status_code != 201:
        return None
    integrity = _staff(world, "integrity_officer", None)
    alerts = world.client.get("/api/v1/alerts", headers=integrity).get_json()
    items = alerts.get("items") or []
    return str(items[0]["id"]) if items else None


def _real_erasure_request(world: World) -> str | None:
    """A pending erasure request for the real case, by another supervisor of its office."""
    return _made_on_case(
        world, "supervisor", "erasure-requests", lambda _case: {"reason": "Fuzz request."}
    )


def _real_code(world: World) -> str | None:
    """An office code, or a registered partner's code on the partner routes."""
    if not world.target.path.startswith("/api/v1/partners/"):
        return OTHER_OFFICE
    key = X25519PrivateKey.generate().public_key().public_bytes_raw()
    body = {"code": "fz-partner", "name": "Fuzz partner", "public_key": b64encode(key).decode()}
    made = world.client.post("/api/v1/partners", json=body, headers=_staff(world, "admin", None))
    return "fz-partner" if made.status_code == 201 else None


# Path parameter name -> how to make a real object it can name.
REAL_OBJECTS: dict[str, Callable[[World], str | None]] = {
    "user_id": _real_user,
    "code": _real_code,
    "reference": _real_case,
    "seq": _real_entry,
    "interview_id": _real_interview,
    "consent_id": _real_consent,
    "handoff_id": _real_handoff,
    "alert_id": _real_alert,
    "request_id": _real_erasure_request,
    "name": lambda world: "cases-by-office-stage",  # a report
}
# Body member name -> a value the service accepts where the document cannot say
# which (an office that exists, a password the policy accepts).
REAL_MEMBERS: dict[str, Callable[[], str]] = {
    "office": lambda: HOME_OFFICE,
    "password": lambda: "fuzz-" + TEST_PASSWORD,
}


def _household(seed: int) -> dict[str, Any]:
    from casework.cases.seeding import synthetic_households

    return next(synthetic_households(1, seed=seed))


# Operation -> a whole valid body, for bodies whose rules the document cannot state.
REAL_BODIES: dict[tuple[str, str], Callable[[int], Any]] = {
    ("POST", "/api/v1/cases"): _household,
}


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Target:
    value: Target = request.param
    return value


@pytest.fixture
def world(app: Flask, client: FlaskClient, db_session: Session, target: Target) -> World:
    for code, name in ((HOME_OFFICE, "Fuzz home"), (OTHER_OFFICE, "Fuzz other")):
        db_session.add(Office(code=code, name=name, country_code="UGA"))
    db_session.flush()
    world = World(app, client, db_session, target)
    world.sign_in()
    return world


@pytest.fixture(scope="session")
def api_document(app: Flask) -> dict[str, Any]:
    document: dict[str, Any] = app.test_client().get(DOCUMENT).get_json()
    return document


# --- the fuzz test ------------------------------------------------------------------


def status_listed(ctx: CheckContext, response: Any, case: Any) -> bool | None:
    """The status is listed on the operation, or is one any JSON route may answer.

    Probes with another method (``unsupported_method``) are not the operation's.
    """
    if case.method.upper() != case.operation.method.upper():
        return None
    listed = {int(s) for s in case.operation.definition.raw["responses"] if s.isdigit()}
    status = response.status_code
    assert status in listed | GENERIC_STATUSES, (
        f"{case.operation.label} answered {status}, which it does not document "
        f"(documented: {sorted(listed)})"
    )
    return None


CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    status_listed,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
    unsupported_method,
    allow_header_conformance,
]
# Failures in features whose owners are still at work, reported to them: the
# named check is skipped for that operation only, every other check still runs.
# Remove an entry with the fix.
KNOWN_ISSUES: dict[tuple[str, str], dict[str, str]] = {}


def checks_for(target: Target) -> list[Any]:
    skipped = KNOWN_ISSUES.get((target.method, target.path), {})
    return [check for check in CHECKS if check.__name__ not in skipped]


def skipped_repetition(target: Target, case: Any) -> bool:
    """Whether to skip a boundary case already sent by the operation's first caller.

    The coverage phase sends the same few hundred boundary cases whoever calls;
    they test the input contract, which the role does not change. By default
    only the first caller sends them (the suite stays fast); ``make fuzz`` sends
    them as everyone.
    """
    meta = case.meta
    return (
        not EXAMPLES
        and not target.first
        and meta is not None
        and meta.phase.name == TestPhase.COVERAGE
    )


def _heads(value: Any) -> bool:
    """A stable coin: the same example always takes the same side (shrinking needs it)."""
    return zlib.crc32(repr(value).encode()) % 2 == 0


def with_real_objects(world: World, case: Any) -> None:
    """In about half of the valid examples, name real objects and send accepted values.

    Path parameters name a real object of the caller's office (with its current
    ETag when the operation needs ``If-Match``); body members and bodies whose
    rules the document cannot state get values the service accepts. The other
    half stay as generated, so unknown references must answer a documented 404.
    """
    meta = case.meta
    if meta is None or meta.generation.mode.is_negative:
        return
    if case.path_parameters and _heads(sorted(case.path_parameters.items())):
        _real_path(world, case)
    if isinstance(case.body, dict) and _heads(sorted(case.body.items(), key=str)):
        _real_body(world, case)


def _real_path(world: World, case: Any) -> None:
    real = {name: world.real_value(name) for name in case.path_parameters}
    case.path_parameters = {
        name: value if real[name] is None else real[name]
        for name, value in case.path_parameters.items()
    }
    headers = case.headers or {}
    if "If-Match" in headers:
        current = world.client.get(case.formatted_path, headers=world.headers)
        if current.status_code == 200 and current.headers.get("ETag"):
            case.headers = {**headers, "If-Match": current.headers["ETag"]}


def _real_body(world: World, case: Any) -> None:
    whole = REAL_BODIES.get((world.target.method, world.target.path))
    if whole is not None:
        case.body = whole(zlib.crc32(repr(case.body).encode()))
        return
    case.body = {
        name: REAL_MEMBERS[name]() if name in REAL_MEMBERS else value
        for name, value in case.body.items()
    }


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES or 10,
    deadline=None,
    database=None,
    derandomize=not EXAMPLES,
    # The examples of one test share its world and its rolled-back transaction on purpose.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_operation(case: Any, world: World) -> None:
    if skipped_repetition(world.target, case):
        return
    with_real_objects(world, case)
    case.call_and_validate(headers=world.headers, checks=checks_for(world.target), app=world.app)
    world.stay_signed_in()


# --- the targets themselves -----------------------------------------------------------


def test_document_matches_declarations(app: Flask, api_document: dict[str, Any]) -> None:
    """Every documented operation has a view whose declaration the document repeats."""
    access = declared_access(app)
    for method, path, operation in operations(api_document):
        declared = access.get((method, path))
        assert declared is not None, f"{method} {path}: no view with an access declaration"
        if declared.public:
            assert operation.get("security") == [], f"{method} {path} is public"
            continue
        assert operation.get("security") == [{"bearer": []}], f"{method} {path}"
        assert operation.get("x-permissions") == [p.value for p in declared.permissions]


def test_collected_document_is_served(api_document: dict[str, Any]) -> None:
    """The tests were generated from the document the migrated application serves."""
    assert api_document == SCHEMA.raw_schema


def test_every_operation_has_a_caller() -> None:
    operations_found = {(m, p) for m, p, _ in operations(SCHEMA.raw_schema)}
    assert {(t.method, t.path) for t in TARGETS} == operations_found


def test_callers_follow_the_permission_table() -> None:
    def needs_mfa(role: str) -> bool:
        return role == "supervisor"

    users_write = Access(public=False, permissions=(Permission.USERS_WRITE,))
    assert callers(users_write, needs_mfa) == [("admin", False)]
    self_pending = Access(public=False, permissions=(Permission.SELF,), allow_mfa_pending=True)
    assert callers(self_pending, needs_mfa) == [(r, False) for r in STAFF_ROLES] + [
        ("supervisor", True)
    ]
    assert callers(Access(public=True), needs_mfa) == [(None, False)]
    sync_push = Access(public=False, permissions=(Permission.SYNC_PUSH,))
    assert callers(sync_push, needs_mfa) == [
        ("caseworker", False),
        ("vetting_officer", False),
        ("supervisor", False),
    ]
    nobody = Access(public=False, permissions=(Permission.USERS_WRITE, Permission.CASES_READ))
    assert callers(nobody, needs_mfa) == [(None, False)]


@pytest.mark.parametrize(
    "target", [Target("POST", "/api/v1/offices", "admin")], indirect=True, ids=str
)
def test_examples_share_the_rolled_back_transaction(world: World, engine: Engine) -> None:
    """A fuzzed write is seen by the test and its later examples, and by nobody else.

    Requests commit to a savepoint of the test's outer transaction, which the
    ``connection`` fixture rolls back: the fuzzer leaves no row behind.
    """
    operation = SCHEMA["/api/v1/offices"]["POST"]
    body: dict[str, Any] = {"code": "fz-written", "name": "Example", "country_code": "UGA"}
    first = operation.Case(body=body)
    created = first.call_and_validate(headers=world.headers, checks=CHECKS, app=world.app)
    assert created.status_code == 201
    again = operation.Case(body=body).call(headers=world.headers, app=world.app)
    assert again.status_code == 409  # the next example sees the first one's write
    assert world.session.get(Office, "fz-written") is not None
    outsider = engine.raw_connection()  # no SQLAlchemy BEGIN: SQLite would wait for the lock
    try:
        cursor = outsider.cursor()
        cursor.execute(f"SELECT count(*) FROM {Office.__tablename__} WHERE code = 'fz-written'")
        assert cursor.fetchone() == (0,)
    finally:
        outsider.close()


CASE = "/api/v1/cases/{reference}"
MADE = [
    (Target("GET", CASE, "caseworker"), "reference"),
    (Target("PATCH", CASE + "/interviews/{interview_id}", "vetting_officer"), "interview_id"),
    (Target("POST", CASE + "/consents/{consent_id}/withdraw", "caseworker"), "consent_id"),
    (Target("GET", CASE + "/handoffs/{handoff_id}/package", "supervisor"), "handoff_id"),
    (Target("POST", "/api/v1/alerts/{alert_id}/review", "integrity_officer"), "alert_id"),
    (Target("POST", "/api/v1/erasure-requests/{request_id}/approve", "supervisor"), "request_id"),
    (Target("POST", "/api/v1/partners/{code}/deactivate", "admin"), "code"),
]


@pytest.mark.parametrize(
    ("target", "name"), MADE, indirect=["target"], ids=[name for _, name in MADE]
)
def test_real_objects_can_be_made(world: World, name: str) -> None:
    """Every maker gets past the lookup, so the fuzzer reaches each operation's real work."""
    assert world.real_value(name) is not None
