"""The HTTP suite: every scenario against the real service under gunicorn, per database.

For each backend: a temporary instance folder, ``casework init`` in it, then
two gunicorn servers with identical settings (the service, and the bare Flask
baseline), started and stopped here. Each case is measured in rounds that
alternate with the baseline (:mod:`benchmarks.paired`) and divided by its own
paired baseline. Nothing outlives the run: servers are stopped and a
PostgreSQL database is dropped even when a step fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from benchmarks import scale
from benchmarks.context import BenchContext, SetupError, exception_line
from benchmarks.databases import (
    BenchDatabase,
    DatabaseUnavailable,
    embedded_sqlite,
    postgres_answers,
    postgres_url,
    throwaway_postgres,
)
from benchmarks.gunicorn_server import REPO_ROOT, GunicornServer, ServerError
from benchmarks.load import LoadError, LoadGenerator, LoadResult, combine
from benchmarks.paired import Pair, PairedRunner, ScenarioError, describe_pair
from benchmarks.scenarios import BASELINE_NAME, Scenario, select
from benchmarks.settings import BACKENDS, BenchSettings

SERVICE_APP = "wsgi:app"
BASELINE_APP = "benchmarks.baseline_app:app"
INIT_TIMEOUT_S = 300
Log = Callable[[str], None]


def run(settings: BenchSettings, generator: LoadGenerator, log: Log) -> dict[str, Any]:
    """Measure the selected scenarios on every planned backend; one section per backend."""
    scenarios = select(settings.scenarios)
    sections: dict[str, Any] = {}
    for backend, skip_reason in plan_backends(settings).items():
        if skip_reason:
            log(f"{backend}: skipped ({skip_reason})")
            sections[backend] = {"status": "skipped", "reason": skip_reason}
            continue
        log(f"{backend}:")
        try:
            with _provision(backend, settings) as database:
                sections[backend] = _run_backend(settings, generator, database, scenarios, log)
        except (DatabaseUnavailable, ServerError, SetupError, ScenarioError, LoadError) as exc:
            log(f"{backend}: failed: {exc}")
            sections[backend] = {"status": "failed", "error": str(exc)}
    return sections


def plan_backends(settings: BenchSettings) -> dict[str, str]:
    """Backend -> "" to run it, or why it is skipped.

    PostgreSQL is skipped when nothing answers, unless it was asked for by
    name or by ``BENCH_DATABASE_URL``: then its absence is an error.
    """
    plan: dict[str, str] = {}
    for backend in settings.backends or BACKENDS:
        plan[backend] = ""
        if backend == "postgresql" and not postgres_answers(settings.postgres_url):
            url = postgres_url(settings.postgres_url)
            reason = f"no PostgreSQL server answers on {url.host}:{url.port or 5432}"
            if settings.backends or settings.postgres_required:
                raise DatabaseUnavailable(reason)
            plan[backend] = reason
    return plan


BENCH_LOGIN_MAX_FAILURES = 2048


def service_environment(instance_path: Path, database: BenchDatabase) -> dict[str, str]:
    """The caller's environment without any ``CASEWORK_*`` variable, plus the run's own.

    Dropping inherited ``CASEWORK_*`` keeps a benchmark away from a real
    keyring or database and runs the service on the embedded defaults.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("CASEWORK_")}
    env["CASEWORK_INSTANCE_PATH"] = str(instance_path)
    env["CASEWORK_DATABASE_URL"] = database.url
    # Every load connection signs in to one account from one address, and a sign-in
    # counts against the throttle while its password is checked: the login case
    # measures the sign-in, not the lock-out, so the limit sits above any connection count.
    env["CASEWORK_LOGIN_MAX_FAILURES"] = str(BENCH_LOGIN_MAX_FAILURES)
    return env


def _provision(backend: str, settings: BenchSettings) -> AbstractContextManager[BenchDatabase]:
    if backend == "sqlite":
        return embedded_sqlite()
    return throwaway_postgres(settings.postgres_url)


def _run_backend(
    settings: BenchSettings,
    generator: LoadGenerator,
    database: BenchDatabase,
    scenarios: list[Scenario],
    log: Log,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="casework-bench-") as scratch:
        root = Path(scratch)
        env = service_environment(root / "instance", database)
        _initialise(env)
        with _servers(settings, env, root) as ports:
            context = BenchContext(settings, database, root / "instance", env, ports["service"])
            seen = context.call_in_app("benchmarks.in_app:service_database")
            if seen["backend"] != database.backend:
                raise SetupError(f"the service reached {seen['backend']}, not {database.backend}")
            runner = PairedRunner(settings, generator, context, ports, root)
            baseline_runs, outcomes = _measure_all(runner, scenarios[0], scenarios[1:], log)
    return {
        "status": "ok",
        "database": seen,
        BASELINE_NAME: _baseline_section(baseline_runs),
        "scenarios": outcomes,
        "scale": scale.figures(outcomes),
    }


@contextmanager
def _servers(settings: BenchSettings, env: dict[str, str], root: Path) -> Iterator[dict[str, int]]:
    """Both gunicorn servers, up together and always stopped; yields their ports."""
    config = settings.gunicorn
    baseline = GunicornServer(
        BASELINE_APP, config, env=env, workdir=root / "baseline", ready_path="/bare"
    )
    service = GunicornServer(
        SERVICE_APP, config, env=env, workdir=root / "service", ready_path="/readyz"
    )
    try:
        baseline.launch()  # both boot at once; the run waits for the slower
        service.launch()
        baseline.wait_ready()
        service.wait_ready()
        yield {"baseline": baseline.port, "service": service.port}
    finally:
        service.stop()
        baseline.stop()


def _measure_all(
    runner: PairedRunner, baseline_scenario: Scenario, cases: list[Scenario], log: Log
) -> tuple[list[LoadResult], dict[str, dict[str, Any]]]:
    """Every case paired with the baseline; returns the baseline rounds and each outcome."""
    baseline = runner.prepare(baseline_scenario)
    baseline_runs: list[LoadResult] = []
    outcomes: dict[str, dict[str, Any]] = {}
    for scenario in cases:
        reason = scenario.skip_reason(runner.settings)
        if reason:
            outcomes[scenario.name] = {"status": "skipped", "reason": reason, **scenario.describe()}
            continue
        try:
            pair = runner.pair(runner.prepare(scenario), baseline)
        except (SetupError, ScenarioError, LoadError, OSError) as exc:
            log(f"  {scenario.name}: failed: {exc}")
            outcomes[scenario.name] = {"status": "failed", "error": str(exc), **scenario.describe()}
            continue
        baseline_runs.append(pair.baseline)
        outcomes[scenario.name] = _paired_outcome(scenario, pair, runner.settings)
        log(_progress(scenario.name, pair.case, pair.ratio))
    if not baseline_runs:  # no live case: the baseline on its own still gets measured
        baseline_runs.append(runner.alone(baseline))
    return baseline_runs, outcomes


def _paired_outcome(scenario: Scenario, pair: Pair, settings: BenchSettings) -> dict[str, Any]:
    outcome = {
        "status": "ok" if pair.case.error_count == 0 else "errors",
        **scenario.describe(),
        **describe_pair(pair),
    }
    if pair.case.requests == 0:  # a rate of 0 would read as a measurement; it is none
        outcome["status"] = "too slow"
        outcome["reason"] = (
            f"no request completed within a {settings.round_s} s round at "
            f"{settings.connections} connections; raise BENCH_DURATION or lower BENCH_CONNECTIONS"
        )
        return outcome
    if scenario.target is not None:
        outcome["target"] = scenario.target.check(pair.ratio, pair.case.latency_ms["p99"])
    return outcome


def _baseline_section(runs: list[LoadResult]) -> dict[str, Any]:
    """All baseline rounds as one figure, and how far the per-case baselines spread."""
    combined = combine(runs)
    rates = [run.rps for run in runs]
    spread = (max(rates) - min(rates)) / combined.rps if combined.rps else 0.0
    per_case = [round(rate, 1) for rate in rates]
    return {**combined.describe(), "spread": round(spread, 3), "per_case_rps": per_case}


def _progress(name: str, result: LoadResult, ratio: float) -> str:
    latency = result.latency_ms
    return (
        f"  {name:<22} {result.rps:>9.1f} req/s  x{ratio:.3f}  p50 {latency['p50']:.2f} ms"
        f"  p99 {latency['p99']:.2f} ms  errors {result.error_count}"
    )


def _initialise(env: dict[str, str]) -> None:
    """``casework init`` in the run's instance folder: schema, keys, first-run steps."""
    completed = subprocess.run(
        [sys.executable, "-c", "from casework.cli import main; main(['init'])"],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=INIT_TIMEOUT_S,
        check=False,
    )
    if completed.returncode != 0:
        raise SetupError(
            f"casework init failed with exit status {completed.returncode}: "
            f"{exception_line(completed.stderr)}"
        )
