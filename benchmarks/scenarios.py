"""The registry of HTTP scenarios: what each case sends, and how it is prepared.

Adding a case is one entry in :data:`SCENARIOS`: a method and path, optional
static headers and JSON body, and optionally a setup hook. The hook runs once
per backend while the servers are up and returns a :class:`Prepared`: headers
to add (a bearer token) and per-request paths or bodies, which the load
generator cycles through (a per-request body generator is a hook returning
``Prepared(bodies=...)``). Shared work such as seeding goes through
``ctx.once(...)`` and ``ctx.call_in_app(...)``.

A scenario whose endpoint does not exist yet carries ``pending``: it is
reported as skipped ("not yet available"), never silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks import synthetic
from benchmarks.context import BenchContext
from benchmarks.request_file import RequestPool, json_body
from benchmarks.settings import SettingsError

BASELINE_NAME = "baseline"
NOT_YET_AVAILABLE = "not yet available"


@dataclass(frozen=True)
class Prepared:
    """What a setup hook adds: headers, and per-request paths or bodies (cycled)."""

    headers: Mapping[str, str] = field(default_factory=dict)
    paths: Sequence[str] = ()
    bodies: Sequence[Any] = ()


SetupHook = Callable[[BenchContext], Prepared]


@dataclass(frozen=True)
class Target:
    """A figure the issue promises: throughput relative to the baseline, tail latency."""

    min_ratio: float | None = None
    max_p99_ms: float | None = None

    def check(self, ratio: float, p99_ms: float) -> dict[str, Any]:
        met = (self.min_ratio is None or ratio >= self.min_ratio) and (
            self.max_p99_ms is None or p99_ms <= self.max_p99_ms
        )
        return {"min_ratio": self.min_ratio, "max_p99_ms": self.max_p99_ms, "met": met}


@dataclass(frozen=True)
class Scenario:
    """One case: a request shape against the service (or the bare baseline)."""

    name: str
    summary: str
    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    setup: SetupHook | None = None
    server: str = "service"  # or "baseline": the bare Flask app
    expect_status: int = 200
    target: Target | None = None
    pending: str = ""  # what is missing; non-empty means skipped as not yet available

    def request_pool(self, prepared: Prepared) -> RequestPool:
        """The requests to cycle through: the scenario's shape plus what setup prepared."""
        paths = list(prepared.paths) or [self.path]
        if prepared.bodies:
            bodies = [json_body(body) for body in prepared.bodies]
        else:
            bodies = [json_body(self.body) if self.body is not None else ""]
        headers = {"Accept": "application/json", **self.headers, **prepared.headers}
        if any(bodies):
            headers.setdefault("Content-Type", "application/json")
        count = max(len(paths), len(bodies))
        items = tuple((paths[i % len(paths)], bodies[i % len(bodies)]) for i in range(count))
        return RequestPool(method=self.method, headers=headers, items=items)

    def describe(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "server": self.server,
            "method": self.method,
            "path": self.path,
            "expect_status": self.expect_status,
        }


def _document_searches(_ctx: BenchContext) -> Prepared:
    return Prepared(bodies=synthetic.document_searches(1000))


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        BASELINE_NAME,
        "bare Flask JSON GET under the same gunicorn settings (measured first and last)",
        path="/bare",
        server="baseline",
    ),
    Scenario(
        "bare_post",
        "bare Flask POST parsing a JSON body, 1000 synthetic bodies cycled: the POST reference",
        method="POST",
        path="/bare",
        server="baseline",
        setup=_document_searches,
    ),
    Scenario("healthz", "liveness: casework's request hooks, no database", path="/healthz"),
    Scenario(
        "readyz",
        "readiness: a database round trip and the migration-head check",
        path="/readyz",
    ),
    Scenario(
        "openapi",
        "the generated OpenAPI document (a large JSON response)",
        path="/api/v1/openapi.json",
    ),
    # ---- Not yet available. Each becomes live by replacing ``pending`` with a
    # setup hook; the request shapes below are what the harness will send.
    #
    # GET /api/v1/cases/{reference}
    #   Authorization: Bearer <token of a caseworker in the seeded office>
    #   -> 200, the case with its members' fields decrypted; one case.read audit entry.
    #   setup: refs = ctx.once("cases", lambda: ctx.call_in_app(<seed function>,
    #          count=ctx.settings.cases)); token = ctx.once("token", <login>);
    #          Prepared(headers={"Authorization": f"Bearer {token}"},
    #                   paths=[f"/api/v1/cases/{ref}" for ref in refs[:1000]])
    Scenario(
        "case_read",
        "authenticated read of one case: decrypt, scope check, audit append",
        path="/api/v1/cases/{reference}",
        target=Target(min_ratio=0.5, max_p99_ms=100.0),
        pending="needs the case read endpoint and a seeding function",
    ),
    # POST /api/v1/cases
    #   Authorization: Bearer <token>; Content-Type: application/json
    #   body: one synthetic household per request, e.g.
    #   {"office": "<seeded office>", "members": [{"relationship": "head",
    #    "family_name": "...", "given_name": "...", "birth_year": 1990, "sex": "f",
    #    "country_of_origin": "SYR", "documents": [{"type": "passport", "number": "PX4471093"}]}]}
    #   -> 201 with the new reference; encrypts every member field, writes blind indexes.
    Scenario(
        "case_intake",
        "register a household: data key, field encryption, blind indexes, audit",
        method="POST",
        path="/api/v1/cases",
        expect_status=201,
        pending="needs the intake endpoint",
    ),
    # POST /api/v1/cases/search
    #   Authorization: Bearer <token>; Content-Type: application/json
    #   body: {"document_type": "passport", "document_number": "PX4471093"}
    #   (synthetic.document_searches(1000): the same numbers the seeding uses,
    #   so a share of searches hit) -> 200 {"items": [...]}. Run at BENCH_CASES=10000
    #   and 1000000 to check "1M within 1.5x of 10k".
    Scenario(
        "case_search_document",
        "exact search by document number through its blind index",
        method="POST",
        path="/api/v1/cases/search",
        pending="needs the search endpoint",
    ),
    # GET /api/v1/cases?limit=50
    #   Authorization: Bearer <token> -> 200 {"items": [50 cases], "next_cursor": "..."}
    Scenario(
        "case_list",
        "first page of 50 cases in the caller's office scope",
        path="/api/v1/cases?limit=50",
        pending="needs the case list endpoint",
    ),
    # POST /api/v1/cases/filter
    #   Authorization: Bearer <token>; Content-Type: application/json
    #   body: {"country_of_origin": "SYR", "limit": 50}
    #   -> 200 {"items": [...], "next_cursor": ...}: decrypts page by page within scope.
    Scenario(
        "case_filter_encrypted",
        "list of 50 filtered on an encrypted attribute (decrypt within scope)",
        method="POST",
        path="/api/v1/cases/filter",
        pending="needs the encrypted-attribute filter endpoint",
    ),
    # POST /api/v1/auth/login
    #   Content-Type: application/json
    #   body: {"username": "bench-caseworker", "password": "<set by the seeding step>"}
    #   -> 200 {"token": "..."}; one argon2id verification per request (the
    #   production cost: 64 MiB, 3 passes), so expect a low rate by design.
    Scenario(
        "login",
        "staff login: argon2id password check, token issue, audit",
        method="POST",
        path="/api/v1/auth/login",
        pending="needs the login endpoint and a seeded user",
    ),
)


def select(names: Sequence[str]) -> list[Scenario]:
    """The named scenarios (all when ``names`` is empty), the baseline always first."""
    known = {scenario.name: scenario for scenario in SCENARIOS}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SettingsError(f"unknown scenario {unknown[0]!r}; known: {', '.join(known)}")
    wanted = set(names) or set(known)
    return [s for s in SCENARIOS if s.name in wanted or s.name == BASELINE_NAME]
