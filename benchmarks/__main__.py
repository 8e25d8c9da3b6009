"""``make bench``: run every benchmark, print a table, write ``benchmarks/results/latest.json``.

The HTTP suite reports throughput as a ratio to a bare Flask endpoint measured
alongside under the same gunicorn settings, because absolute numbers on a
shared 2-core machine drift and ratios do not. Other suites (scripts named in
:data:`SUITES`, each writing JSON to ``--out FILE``) are added to the same file.
Exit status: 0 when everything ran (skips included), 1 when a backend, a
scenario or a suite failed, 2 for bad settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import http_suite, load, report
from benchmarks.databases import DatabaseUnavailable
from benchmarks.gunicorn_server import REPO_ROOT
from benchmarks.scenarios import SCENARIOS, select
from benchmarks.settings import BenchSettings, SettingsError, from_environ, names

SUITES: tuple[str, ...] = (
    "crypto_bench",
    "audit_bench",
    "log_bench",
    "sync_bench",
    "field_client_bench",
    "reports_bench",
    "shred_bench",
)
SUITE_ARGS: dict[str, tuple[str, ...]] = {
    # The figure is 100,000 cases (docs/reports.md has the command); make bench
    # runs a fifth of that so the whole run stays within its time.
    "reports_bench": ("--cases", "20000", "--repeat", "1"),
}
"""Arguments a suite gets besides ``--out FILE``: sizes that fit in a ``make bench`` run."""
BENCHMARKS_DIR = Path(__file__).resolve().parent
SUITE_TIMEOUT_S = 900


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.list:
        _print_scenarios()
        return 0
    try:
        settings = _settings(args)
        generator = None if args.skip_http else _generator(settings, args.no_install)
        http = {} if generator is None else http_suite.run(settings, generator, _log)
    except (SettingsError, DatabaseUnavailable, load.LoadError) as exc:
        print(f"benchmarks: {exc}", file=sys.stderr)
        return 2
    suites = {} if args.skip_suites else run_suites()
    results = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": report.machine(http),
        "settings": settings.describe(),
        "gunicorn": settings.gunicorn.describe(),
        "load_generator": None
        if generator is None
        else {"name": generator.name, "version": generator.version},
        "http": http,
        "suites": suites,
    }
    settings.output.parent.mkdir(parents=True, exist_ok=True)
    settings.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(report.render(results))
    _log(f"written to {settings.output}")
    return 1 if failed(results) else 0


def run_suites() -> dict[str, Any]:
    """Run each suite script; a missing one is skipped, a failing one recorded.

    A suite is a script ``benchmarks/<name>.py`` that accepts ``--out FILE``
    and writes its figures there as JSON. It runs in its own process, after
    the HTTP suite, so neither disturbs the other's measurements.
    """
    outcomes: dict[str, Any] = {}
    for name in SUITES:
        script = BENCHMARKS_DIR / f"{name}.py"
        if not script.is_file():
            outcomes[name] = {"status": "skipped", "reason": "not yet available"}
            continue
        _log(f"suite {name}")
        outcomes[name] = _run_suite(script, SUITE_ARGS.get(name, ()))
    return outcomes


def _run_suite(script: Path, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="casework-suite-") as scratch:
        out = Path(scratch) / "out.json"
        try:
            completed = subprocess.run(
                [sys.executable, str(script), "--out", str(out), *extra],
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=SUITE_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"status": "failed", "error": f"overran {SUITE_TIMEOUT_S} s; killed"}
        if completed.returncode != 0 or not out.is_file():
            last = (completed.stderr.strip().splitlines() or [""])[-1]
            return {"status": "failed", "error": f"exit {completed.returncode}: {last}"}
        return {"status": "ok", "results": json.loads(out.read_text(encoding="utf-8"))}


def failed(results: dict[str, Any]) -> bool:
    """True when a backend, a scenario or a suite could not be measured."""
    sections = results["http"].values()
    scenario_outcomes = [
        outcome for section in sections for outcome in section.get("scenarios", {}).values()
    ]
    everything = [*sections, *scenario_outcomes, *results["suites"].values()]
    return any(item["status"] == "failed" for item in everything)


def _settings(args: argparse.Namespace) -> BenchSettings:
    settings = from_environ(os.environ)
    changes: dict[str, Any] = {
        "duration_s": args.duration,
        "rounds": args.rounds,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "threads": args.threads,
        "loadgen": args.loadgen,
        "backends": names(args.backends) if args.backends is not None else None,
        "scenarios": names(args.scenarios) if args.scenarios is not None else None,
        "output": args.output,
    }
    settings = dataclasses.replace(settings, **{k: v for k, v in changes.items() if v is not None})
    select(settings.scenarios)  # an unknown name stops the run before anything starts
    return settings


def _generator(settings: BenchSettings, no_install: bool) -> load.LoadGenerator:
    return load.choose(
        settings.loadgen,
        settings.connections,
        settings.threads,
        install=not no_install,
        log=_log,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="casework benchmarks; options override the BENCH_* variables.",
    )
    parser.add_argument("--scenarios", help="comma-separated names (see --list)")
    parser.add_argument("--backends", help="sqlite, postgresql, or both (default: auto)")
    parser.add_argument("--duration", type=int, help="measured seconds per scenario")
    parser.add_argument("--rounds", type=int, help="rounds alternating with the baseline")
    parser.add_argument("--warmup", type=int, help="unmeasured seconds before each")
    parser.add_argument("--connections", type=int)
    parser.add_argument("--threads", type=int, help="load-generator threads")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"))
    parser.add_argument("--output", type=Path, help="results file (default: results/latest.json)")
    parser.add_argument("--no-install", action="store_true", help="never apt-get install wrk")
    parser.add_argument("--skip-http", action="store_true", help="only the other suites")
    parser.add_argument("--skip-suites", action="store_true", help="only the HTTP suite")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser


def _print_scenarios() -> None:
    for scenario in SCENARIOS:
        state = scenario.skip_reason(BenchSettings()) or "live"
        print(f"{scenario.name:<22} {scenario.method:<5} {scenario.path:<32} {state}")
        print(f"{'':<22} {scenario.summary}")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
