"""Paired measurement: each case alternates with the baseline in short rounds.

A shared 2-core machine drifts by tens of percent within a minute as other
jobs come and go; measuring the baseline once at the start and once at the
end left ratios off by as much. Run side by side, in alternating order
(baseline then case, case then baseline, ...), both see the same drift and
their ratio holds still.
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import request_file
from benchmarks.context import BenchContext
from benchmarks.load import LoadGenerator, LoadResult, combine
from benchmarks.scenarios import Prepared, Scenario
from benchmarks.settings import BenchSettings


class ScenarioError(RuntimeError):
    """A scenario's first request did not answer as the scenario expects."""


@dataclass(frozen=True)
class Ready:
    """A scenario prepared and checked: its request file and the port it goes to."""

    scenario: Scenario
    requests: Path
    port: int


@dataclass(frozen=True)
class Pair:
    """A case and its baseline, measured in the same alternating rounds."""

    case: LoadResult
    baseline: LoadResult
    rounds: list[dict[str, float]]

    @property
    def ratio(self) -> float:
        """Case throughput over baseline throughput."""
        return self.case.rps / self.baseline.rps if self.baseline.rps else 0.0


class PairedRunner:
    """Prepares scenarios and measures them against the running servers of one backend."""

    def __init__(
        self,
        settings: BenchSettings,
        generator: LoadGenerator,
        context: BenchContext,
        ports: Mapping[str, int],
        scratch: Path,
    ) -> None:
        self.settings = settings
        self.generator = generator
        self.context = context
        self.ports = ports
        self.scratch = scratch

    def prepare(self, scenario: Scenario) -> Ready:
        """Run the setup hook, write the request file, check one request, warm up.

        Raises :class:`ScenarioError` when the first request answers another
        status than expected, so no load is spent on a broken scenario.
        """
        prepared = scenario.setup(self.context) if scenario.setup else Prepared()
        pool = scenario.request_pool(prepared)
        requests = self.scratch / f"{scenario.name}.requests"
        request_file.write(requests, pool)
        port = self.ports[scenario.server]
        probe(port, pool, scenario.expect_status)
        if self.settings.warmup_s:
            self.generator.run(port, requests, self.settings.warmup_s)
        return Ready(scenario, requests, port)

    def alone(self, ready: Ready) -> LoadResult:
        """The scenario alone, in the configured number of rounds."""
        return combine(
            [self._round(ready, self.settings.round_s) for _ in range(self.settings.rounds)]
        )

    def pair(self, case: Ready, baseline: Ready) -> Pair:
        """Alternate baseline and case round by round (B C, C B, B C, ...); a
        ``one_round`` case and its baseline take one round each of the whole duration."""
        count, seconds = self.settings.rounds, self.settings.round_s
        if case.scenario.one_round:
            count, seconds = 1, count * seconds
        case_runs: list[LoadResult] = []
        baseline_runs: list[LoadResult] = []
        rounds = []
        for number in range(count):
            if number % 2 == 0:
                baseline_runs.append(self._round(baseline, seconds))
                case_runs.append(self._round(case, seconds))
            else:
                case_runs.append(self._round(case, seconds))
                baseline_runs.append(self._round(baseline, seconds))
            rounds.append(
                {
                    "rps": round(case_runs[-1].rps, 1),
                    "baseline_rps": round(baseline_runs[-1].rps, 1),
                }
            )
        return Pair(combine(case_runs), combine(baseline_runs), rounds)

    def _round(self, ready: Ready, seconds: int) -> LoadResult:
        return self.generator.run(ready.port, ready.requests, seconds)


def probe(port: int, pool: request_file.RequestPool, expect_status: int) -> None:
    """Send the pool's first request once; raise :class:`ScenarioError` on a wrong status.

    The message carries the status only, never the response body.
    """
    path, body = pool.items[0]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            pool.method, path, body=body.encode("ascii") or None, headers=dict(pool.headers)
        )
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    if response.status != expect_status:
        raise ScenarioError(f"expected HTTP {expect_status}, got {response.status}")


def describe_pair(pair: Pair) -> dict[str, Any]:
    """The case's figures, its ratio, and the paired baseline it was divided by."""
    return {
        **pair.case.describe(),
        "ratio_to_baseline": round(pair.ratio, 3),
        "paired_baseline": {
            "rps": round(pair.baseline.rps, 1),
            "latency_ms": {k: round(v, 3) for k, v in pair.baseline.latency_ms.items()},
        },
        "rounds": pair.rounds,
    }
