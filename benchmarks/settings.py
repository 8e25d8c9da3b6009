"""Run settings from ``BENCH_*`` variables, overridable on the command line.

| variable | default | meaning |
|---|---|---|
| BENCH_DURATION | 10 | measured seconds per scenario (and as many for its paired baseline) |
| BENCH_ROUNDS | 5 | rounds the measured time is cut into, alternating with the baseline |
| BENCH_WARMUP | 5 | seconds of load before each measurement, not counted |
| BENCH_CONNECTIONS | 32 | concurrent keep-alive connections |
| BENCH_THREADS | 2 | load-generator threads (processes for the Python fallback) |
| BENCH_LOADGEN | auto | ``wrk`` (installed if missing), ``python``, ``auto`` (wrk, else Python) |
| BENCH_BACKENDS | auto | ``sqlite``, ``postgresql`` or both; auto adds PostgreSQL when it answers |
| BENCH_DATABASE_URL | local server | PostgreSQL server for the throw-away database |
| BENCH_SCENARIOS | all | comma-separated scenario names (the baseline always runs) |
| BENCH_CASES | 2000 | synthetic cases seeded for the case scenarios (~1,500 cases/s) |
| BENCH_SCALE | 0 | 1: also run the read and search scale points (10k, 100k, 1M cases) |
| BENCH_WORKER_CLASS / BENCH_WORKERS / BENCH_WORKER_THREADS | gthread / 2 / 8 | gunicorn |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.databases import DEFAULT_POSTGRES_URL
from benchmarks.gunicorn_server import GunicornConfig

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BACKENDS = ("sqlite", "postgresql")
LOADGENS = ("auto", "wrk", "python")


class SettingsError(ValueError):
    """A ``BENCH_*`` value or option that is out of range or unknown."""


@dataclass(frozen=True)
class BenchSettings:
    """Everything a run needs to know; frozen so every scenario sees the same."""

    duration_s: int = 10
    rounds: int = 5
    warmup_s: int = 5
    connections: int = 32
    threads: int = 2
    loadgen: str = "auto"
    backends: tuple[str, ...] = ()  # empty: SQLite, plus PostgreSQL when it answers
    postgres_url: str = DEFAULT_POSTGRES_URL
    postgres_required: bool = False  # BENCH_DATABASE_URL given: fail rather than skip
    scenarios: tuple[str, ...] = ()  # empty: all
    cases: int = 2_000
    scale: bool = False  # BENCH_SCALE=1: seed and measure the 10k/100k/1M points
    gunicorn: GunicornConfig = field(default_factory=GunicornConfig)
    output: Path = RESULTS_DIR / "latest.json"

    def __post_init__(self) -> None:
        _within("duration", self.duration_s, 1, 600)
        _within("rounds", self.rounds, 1, self.duration_s)
        _within("warm-up", self.warmup_s, 0, 600)
        _within("connections", self.connections, 1, 1024)
        _within("load threads", self.threads, 1, self.connections)
        _within("cases", self.cases, 0, 10_000_000)
        if self.loadgen not in LOADGENS:
            raise SettingsError(f"load generator must be one of {', '.join(LOADGENS)}")
        unknown = set(self.backends) - set(BACKENDS)
        if unknown:
            raise SettingsError(f"unknown backend {sorted(unknown)[0]!r}")

    @property
    def round_s(self) -> int:
        """Seconds of one round (wrk takes whole seconds)."""
        return self.duration_s // self.rounds

    def describe(self) -> dict[str, object]:
        return {
            "duration_s": self.round_s * self.rounds,
            "rounds": self.rounds,
            "warmup_s": self.warmup_s,
            "connections": self.connections,
            "load_threads": self.threads,
            "cases": self.cases,
            "scale": self.scale,
        }


def from_environ(env: Mapping[str, str]) -> BenchSettings:
    """Settings from ``BENCH_*`` variables (see the module docstring)."""
    try:
        gunicorn = GunicornConfig(
            worker_class=env.get("BENCH_WORKER_CLASS", "gthread"),
            workers=_integer(env, "BENCH_WORKERS", 2),
            threads=_integer(env, "BENCH_WORKER_THREADS", 8),
        )
    except ValueError as exc:
        raise SettingsError(f"gunicorn: {exc}") from None
    return BenchSettings(
        duration_s=_integer(env, "BENCH_DURATION", 10),
        rounds=_integer(env, "BENCH_ROUNDS", 5),
        warmup_s=_integer(env, "BENCH_WARMUP", 5),
        connections=_integer(env, "BENCH_CONNECTIONS", 32),
        threads=_integer(env, "BENCH_THREADS", 2),
        loadgen=env.get("BENCH_LOADGEN", "auto"),
        backends=names(env.get("BENCH_BACKENDS", "")),
        postgres_url=env.get("BENCH_DATABASE_URL") or DEFAULT_POSTGRES_URL,
        postgres_required=bool(env.get("BENCH_DATABASE_URL")),
        scenarios=names(env.get("BENCH_SCENARIOS", "")),
        cases=_integer(env, "BENCH_CASES", 2_000),
        scale=env.get("BENCH_SCALE", "") == "1",
        gunicorn=gunicorn,
    )


def names(raw: str) -> tuple[str, ...]:
    """A comma-separated list; ``auto`` or ``all`` or nothing means the default (empty)."""
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    return () if items in {("auto",), ("all",)} else items


def _integer(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number") from None


def _within(what: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise SettingsError(f"{what} must be between {low} and {high}")
