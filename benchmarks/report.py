"""The machine a run happened on, and the table printed at the end of a run."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from collections.abc import Iterator, Mapping
from importlib import metadata
from typing import Any

from benchmarks import scale
from benchmarks.gunicorn_server import REPO_ROOT


def machine(http_sections: Mapping[str, Any]) -> dict[str, Any]:
    """CPU count, interpreter, database versions (as the service saw them), git commit."""
    postgres = http_sections.get("postgresql", {}).get("database", {}).get("version")
    sqlite = http_sections.get("sqlite", {}).get("database", {}).get("version")
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite or sqlite3.sqlite_version,
        "postgresql": postgres,
        "gunicorn": _version("gunicorn"),
        "flask": _version("flask"),
        "platform": platform.platform(),
        "commit": _git("rev-parse", "HEAD") or "unknown",
        "uncommitted_changes": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def render(results: Mapping[str, Any]) -> str:
    """The human-readable summary: header lines, one row per scenario, the scale ratios,
    then the suites."""
    return "\n".join(
        [
            *_header(results),
            "",
            *_http_rows(results.get("http", {})),
            *scale.render(results.get("http", {})),
            *_suites(results),
        ]
    )


def _header(results: Mapping[str, Any]) -> list[str]:
    host = results["machine"]
    settings = results["settings"]
    workers = results["gunicorn"]
    commit = host["commit"][:12] + (
        " (with uncommitted changes)" if host["uncommitted_changes"] else ""
    )
    loadgen = results.get("load_generator") or {"name": "-", "version": ""}
    return [
        f"casework benchmarks, {results['generated_at']}, commit {commit}",
        f"machine: {host['cpus']} CPUs, Python {host['python']}, SQLite {host['sqlite']}, "
        f"PostgreSQL {host['postgresql'] or 'not measured'}",
        f"load: {loadgen['name']} {loadgen['version']}, {settings['connections']} connections, "
        f"{settings['load_threads']} threads, {settings['duration_s']} s measured "
        f"after {settings['warmup_s']} s warm-up",
        f"gunicorn {host['gunicorn']}: {workers['worker_class']}, {workers['workers']} workers "
        f"x {workers['threads']} threads, for the service and the baseline alike",
    ]


ROW = "{:<11} {:<22} {:>9} {:>8} {:>8} {:>9}  {}"


def _http_rows(sections: Mapping[str, Any]) -> list[str]:
    if not sections:
        return []
    rows = [ROW.format("backend", "scenario", "req/s", "p50 ms", "p99 ms", "x base", "status")]
    for backend, section in sections.items():
        if section["status"] != "ok":
            detail = section.get("reason") or section.get("error")
            rows.append(f"{backend:<11} ({section['status']}: {detail})")
            continue
        baseline = section["baseline"]
        spread = f"ok, paired runs spread {baseline['spread']:.0%}"
        rows.append(_row(backend, "baseline", baseline, 1.0, spread))
        for name, outcome in section["scenarios"].items():
            rows.append(_scenario_row(backend, name, outcome))
    return rows


def _scenario_row(backend: str, name: str, outcome: Mapping[str, Any]) -> str:
    if outcome["status"] not in {"ok", "errors"}:
        detail = outcome.get("reason") or outcome.get("error")
        return ROW.format(backend, name, "-", "-", "-", "-", f"{outcome['status']}: {detail}")
    status = outcome["status"]
    if outcome["status"] == "errors":
        status += f" ({sum(outcome['errors'].values())} of {outcome['requests']})"
    target = outcome.get("target")
    if target:
        status += ", target met" if target["met"] else ", TARGET MISSED"
    return _row(backend, name, outcome, outcome["ratio_to_baseline"], status)


def _row(backend: str, name: str, run: Mapping[str, Any], ratio: float, status: str) -> str:
    latency = run["latency_ms"]
    return ROW.format(
        backend,
        name,
        f"{run['rps']:.1f}",
        f"{latency['p50']:.2f}",
        f"{latency['p99']:.2f}",
        f"{ratio:.3f}",
        status,
    )


def _suites(results: Mapping[str, Any]) -> list[str]:
    suites = results.get("suites", {})
    lines = ["", "other suites:"] if suites else []
    for name, suite in suites.items():
        if suite["status"] != "ok":
            lines.append(
                f"  {name}: {suite['status']} ({suite.get('reason') or suite.get('error')})"
            )
            continue
        lines += [f"  {name}.{key}: {value}" for key, value in _flatten(suite["results"])]
    return lines


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    try:
        completed = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return completed.stdout.strip() if completed.returncode == 0 else ""
