"""Load generators: wrk (preferred, installed from Debian when missing) or the Python fallback.

Both run outside the service's processes, keep ``connections`` keep-alive
connections busy for a fixed time, cycle through a request file
(:mod:`benchmarks.request_file`) and report the same :class:`LoadResult`.
Every run is bounded: by its duration, and by a subprocess timeout on top.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from benchmarks.gunicorn_server import REPO_ROOT

LUA_SCRIPT = Path(__file__).resolve().parent / "wrk_report.lua"
WRK_MARKER = "BENCH_JSON "
OVERRUN_S = 60  # a generator still running this long after its duration is killed
REQUEST_TIMEOUT_S = 10
APT_TIMEOUT_S = 600


class LoadError(RuntimeError):
    """The load generator could not run or produced no figures."""


@dataclass(frozen=True)
class LoadResult:
    """Counts and latencies of one measured run."""

    requests: int
    duration_s: float
    bytes_read: int
    errors: Mapping[str, int]
    latency_ms: Mapping[str, float]  # p50, p90, p99, max, mean

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def describe(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "duration_s": round(self.duration_s, 3),
            "rps": round(self.rps, 1),
            "latency_ms": {name: round(value, 3) for name, value in self.latency_ms.items()},
            "errors": dict(self.errors),
            "bytes_per_request": round(self.bytes_read / self.requests) if self.requests else 0,
        }


class LoadGenerator(Protocol):
    """Anything that can drive a loopback server from a request file."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def run(self, port: int, requests: Path, duration_s: int) -> LoadResult: ...


@dataclass(frozen=True)
class WrkLoad:
    """wrk with ``wrk_report.lua``: percentiles come from wrk's own histogram."""

    executable: str
    connections: int
    threads: int
    name: str = "wrk"
    version: str = ""

    def run(self, port: int, requests: Path, duration_s: int) -> LoadResult:
        command = [
            self.executable,
            f"--threads={self.threads}",
            f"--connections={self.connections}",
            f"--duration={duration_s}s",
            f"--timeout={REQUEST_TIMEOUT_S}s",
            f"--script={LUA_SCRIPT}",
            f"http://127.0.0.1:{port}/",
        ]
        completed = _bounded_run(command, {"BENCH_REQUEST_FILE": str(requests)}, duration_s)
        for line in completed.stdout.splitlines():
            if line.startswith(WRK_MARKER):
                return _from_wrk(json.loads(line[len(WRK_MARKER) :]))
        tail = " | ".join(completed.stderr.strip().splitlines()[-3:])
        raise LoadError(f"wrk printed no figures (exit {completed.returncode}): {tail}")


@dataclass(frozen=True)
class PythonLoad:
    """``benchmarks.pyload``: one process per load thread, connections shared out."""

    connections: int
    threads: int
    name: str = "python"
    version: str = f"asyncio, Python {sys.version_info.major}.{sys.version_info.minor}"

    def run(self, port: int, requests: Path, duration_s: int) -> LoadResult:
        shares = [len(range(i, self.connections, self.threads)) for i in range(self.threads)]
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.pyload",
                    f"--port={port}",
                    f"--requests={requests}",
                    f"--connections={share}",
                    f"--duration={duration_s}",
                    f"--timeout={REQUEST_TIMEOUT_S}",
                    f"--offset={number * 104729}",
                ],
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for number, share in enumerate(shares)
        ]
        try:
            return merge([_collect(process, duration_s) for process in processes])
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.communicate()


def merge(outputs: Sequence[Mapping[str, Any]]) -> LoadResult:
    """Combine the outputs of several ``pyload`` processes into one result."""
    latencies = sorted(float(value) for out in outputs for value in out["latencies_ms"])
    errors: dict[str, int] = {}
    for out in outputs:
        for name, count in out["errors"].items():
            errors[name] = errors.get(name, 0) + int(count)
    return LoadResult(
        requests=len(latencies),
        duration_s=max(float(out["duration_s"]) for out in outputs),
        bytes_read=sum(int(out["bytes"]) for out in outputs),
        errors=errors,
        latency_ms=summarise(latencies),
    )


def combine(rounds: Sequence[LoadResult]) -> LoadResult:
    """Several rounds as one run.

    Counts and time add up exactly. Percentiles cannot be merged without the
    raw histograms, so p50/p90/p99 are the median of the rounds' values (a
    round disturbed by another job does not decide them); ``max`` is the
    largest and ``mean`` is weighted by requests.
    """
    requests = sum(run.requests for run in rounds)
    latency = {
        name: statistics.median(run.latency_ms[name] for run in rounds)
        for name in ("p50", "p90", "p99")
    }
    latency["max"] = max(run.latency_ms["max"] for run in rounds)
    latency["mean"] = (
        sum(run.latency_ms["mean"] * run.requests for run in rounds) / requests if requests else 0.0
    )
    errors: dict[str, int] = {}
    for run in rounds:
        for name, count in run.errors.items():
            errors[name] = errors.get(name, 0) + count
    return LoadResult(
        requests=requests,
        duration_s=sum(run.duration_s for run in rounds),
        bytes_read=sum(run.bytes_read for run in rounds),
        errors=errors,
        latency_ms=latency,
    )


def summarise(sorted_ms: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99 (nearest rank), max and mean of sorted latencies."""
    if not sorted_ms:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}

    def rank(percent: float) -> float:
        return sorted_ms[max(0, math.ceil(percent / 100 * len(sorted_ms)) - 1)]

    return {
        "p50": rank(50),
        "p90": rank(90),
        "p99": rank(99),
        "max": sorted_ms[-1],
        "mean": sum(sorted_ms) / len(sorted_ms),
    }


def choose(
    preference: str,
    connections: int,
    threads: int,
    *,
    install: bool,
    log: Callable[[str], None],
) -> LoadGenerator:
    """wrk when asked for or when it can be had (``auto``), otherwise the Python fallback.

    Raises :class:`LoadError` when wrk was asked for explicitly and cannot be had.
    """
    if preference == "python":
        return PythonLoad(connections, threads)
    executable = find_wrk(install=install, log=log)
    if executable:
        return WrkLoad(executable, connections, threads, version=wrk_version(executable))
    if preference == "wrk":
        raise LoadError("wrk is not installed and could not be installed")
    log("wrk is not available: using the Python load generator (compare ratios only)")
    return PythonLoad(connections, threads)


def find_wrk(*, install: bool, log: Callable[[str], None]) -> str | None:
    """wrk on PATH, else (as root with apt-get, when ``install``) Debian's package."""
    found = shutil.which("wrk")
    if found or not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    log("installing wrk from Debian (apt-get install wrk)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install_command = ["apt-get", "install", "-y", "-qq", "wrk"]
    for command in (install_command, ["apt-get", "update", "-qq"], install_command):
        try:
            subprocess.run(
                command, env=env, capture_output=True, timeout=APT_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            log(f"{' '.join(command)} timed out")
            return None
        found = shutil.which("wrk")
        if found:
            return found
    return None


def wrk_version(executable: str) -> str:
    """``4.1.0`` from wrk's banner (``wrk -v`` prints it and exits non-zero)."""
    completed = subprocess.run(
        [executable, "-v"], capture_output=True, text=True, timeout=10, check=False
    )
    words = (completed.stdout + completed.stderr).split()
    return words[1] if len(words) > 1 and words[0] == "wrk" else "unknown"


def _bounded_run(
    command: list[str], extra_env: Mapping[str, str], duration_s: int
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command,
            env={**os.environ, **extra_env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=duration_s + OVERRUN_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise LoadError(f"{Path(command[0]).name} overran its duration; killed") from None


def _collect(process: subprocess.Popen[str], duration_s: int) -> Mapping[str, Any]:
    try:
        stdout, stderr = process.communicate(timeout=duration_s + OVERRUN_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise LoadError("the Python load generator overran its duration; killed") from None
    if process.returncode != 0 or not stdout.strip():
        tail = stderr.strip().splitlines()[-1:] or [""]
        raise LoadError(f"the Python load generator failed (exit {process.returncode}): {tail[0]}")
    result: Mapping[str, Any] = json.loads(stdout)
    return result


def _from_wrk(raw: Mapping[str, Any]) -> LoadResult:
    return LoadResult(
        requests=int(raw["requests"]),
        duration_s=int(raw["duration_us"]) / 1e6,
        bytes_read=int(raw["bytes"]),
        errors={name: int(count) for name, count in raw["errors"].items()},
        latency_ms={name: float(value) / 1000 for name, value in raw["latency_us"].items()},
    )
