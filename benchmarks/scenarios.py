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

from benchmarks import case_setup, synthetic
from benchmarks.context import BenchContext, SetupError
from benchmarks.request_file import RequestPool, json_body
from benchmarks.settings import BenchSettings, SettingsError

BASELINE_NAME = "baseline"
NOT_YET_AVAILABLE = "not yet available"
SCALE_POINT_SKIPPED = "scale point, run with BENCH_SCALE=1"
SCALE_POINTS = (("10k", 10_000), ("100k", 100_000), ("1m", 1_000_000))


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
    scale_cases: int = 0  # a scale point: skipped unless BENCH_SCALE=1
    # Measured in one round of the whole duration: when the queue of 32 requests takes
    # longer than a short round, each round would start behind the requests the previous
    # one abandoned (the server still completes them) and measure those instead.
    one_round: bool = False

    def skip_reason(self, settings: BenchSettings) -> str:
        """Why this case is not measured in this run ("" when it is)."""
        if self.pending:
            return f"{NOT_YET_AVAILABLE}: {self.pending}"
        if self.scale_cases and not settings.scale:
            minutes = self.scale_cases / case_setup.SEEDING_RATE_PER_S / 60
            return f"{SCALE_POINT_SKIPPED} (~{minutes:,.1f} min of seeding)"
        return ""

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


def _authenticated(ctx: BenchContext) -> Prepared:
    return Prepared(headers=case_setup.bearer(ctx))


def _case_reads(ctx: BenchContext) -> Prepared:
    references = case_setup.seeded(ctx)["references"]
    return Prepared(
        headers=case_setup.bearer(ctx), paths=[f"/api/v1/cases/{ref}" for ref in references]
    )


def _intakes(ctx: BenchContext) -> Prepared:
    return Prepared(headers=case_setup.bearer(ctx), bodies=case_setup.seeded(ctx)["intake_bodies"])


def _searches(ctx: BenchContext, headers: Mapping[str, str], cases: int) -> Prepared:
    """Searches for numbers the seeding gave (household i holds number i): all hit."""
    bodies = synthetic.document_searches(min(cases, case_setup.POOL_SIZE))
    status, answer = ctx.request_json("POST", "/api/v1/cases/search", bodies[0], headers)
    if status != 200 or not isinstance(answer, dict) or len(answer.get("items", ())) != 1:
        raise SetupError(f"a search for a seeded document did not find one case ({status})")
    return Prepared(headers=headers, bodies=bodies)


def _document_search(ctx: BenchContext) -> Prepared:
    return _searches(ctx, case_setup.bearer(ctx), ctx.settings.cases)


def _scale_search(count: int) -> SetupHook:
    def hook(ctx: BenchContext) -> Prepared:
        token = case_setup.scale_office(ctx, count)
        return _searches(ctx, {"Authorization": f"Bearer {token}"}, count)

    return hook


def _scale_read(count: int) -> SetupHook:
    def hook(ctx: BenchContext) -> Prepared:
        token, references = case_setup.scale_references(ctx, count)
        return Prepared(
            headers={"Authorization": f"Bearer {token}"},
            paths=[f"/api/v1/cases/{ref}" for ref in references],
        )

    return hook


def _scale_intake(count: int) -> SetupHook:
    def hook(ctx: BenchContext) -> Prepared:
        token, bodies = case_setup.scale_intakes(ctx, count)
        return Prepared(headers={"Authorization": f"Bearer {token}"}, bodies=bodies)

    return hook


def _logins(ctx: BenchContext) -> Prepared:
    data = case_setup.seeded(ctx)
    body = {"username": case_setup.USERNAME, "password": data["password"]}
    return Prepared(bodies=[body])


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
    # ---- The case scenarios. Setup (benchmarks/case_setup.py), once per backend:
    # an office and a caseworker, BENCH_CASES synthetic cases seeded through the
    # bulk path (not HTTP), one login for a bearer token, and the request pools.
    Scenario(
        "case_read",
        "authenticated read of one case: decrypt, scope check, audit append",
        path="/api/v1/cases/{reference}",
        setup=_case_reads,
        target=Target(min_ratio=0.5, max_p99_ms=100.0),
    ),
    Scenario(
        "case_intake",
        "register a household of three: data key, field encryption, blind indexes, audit",
        method="POST",
        path="/api/v1/cases",
        setup=_intakes,
        expect_status=201,
    ),
    Scenario(
        "case_search_document",
        "exact search by document number through its blind index",
        method="POST",
        path="/api/v1/cases/search",
        setup=_document_search,
    ),
    Scenario(
        "case_list",
        "first page of 50 cases in the caller's office scope",
        path="/api/v1/cases?limit=50",
        setup=_authenticated,
    ),
    Scenario(
        "case_filter_encrypted",
        f"list of 50 filtered on an encrypted attribute (specific need {case_setup.FILTER_NEED})",
        path=f"/api/v1/cases?specific_need={case_setup.FILTER_NEED}&limit=50",
        setup=_authenticated,
    ),
    Scenario(
        "login",
        "staff login: argon2id password check, token issue, audit",
        method="POST",
        path="/api/v1/auth/login",
        setup=_logins,
        one_round=True,  # ~150 ms each, one at a time: 32 queued take ~5 s
    ),
    # Scale points, in growing order: the office grows in place from one to the next,
    # so each size's search, read and intake run before the next seeding (the intakes
    # add a few thousand cases to the office: noise next to the next point's size).
    *(
        scenario
        for label, count in SCALE_POINTS
        for scenario in (
            Scenario(
                f"case_search_document_{label}",
                f"search by document number in an office of {count:,} cases (scale point)",
                method="POST",
                path="/api/v1/cases/search",
                setup=_scale_search(count),
                scale_cases=count,
            ),
            Scenario(
                f"case_read_{label}",
                f"case read in an office of {count:,} cases (scale point)",
                path="/api/v1/cases/{reference}",
                setup=_scale_read(count),
                scale_cases=count,
            ),
            Scenario(
                f"case_intake_{label}",
                f"intake of a household of three into an office of {count:,} cases (scale point)",
                method="POST",
                path="/api/v1/cases",
                setup=_scale_intake(count),
                expect_status=201,
                scale_cases=count,
            ),
        )
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
