"""Paired rounds: a case alternates with the baseline; a slow case takes one long round."""

from __future__ import annotations

from pathlib import Path

from benchmarks.load import LoadResult
from benchmarks.paired import PairedRunner, Ready
from benchmarks.scenarios import SCENARIOS, Scenario
from benchmarks.settings import from_environ

CASE_PORT, BASELINE_PORT = 1001, 1002


class RecordingGenerator:
    """Answers every run with ten requests and records which server ran for how long."""

    name = "recording"
    version = "0"

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def run(self, port: int, requests: Path, duration_s: int) -> LoadResult:
        self.calls.append((port, duration_s))
        latency = dict.fromkeys(("p50", "p90", "p99", "max", "mean"), 1.0)
        return LoadResult(10, float(duration_s), 1000, {}, latency)


def measure(case: Scenario, tmp_path: Path) -> tuple[list[tuple[int, int]], int]:
    generator = RecordingGenerator()
    settings = from_environ({"BENCH_DURATION": "10", "BENCH_ROUNDS": "5"})
    runner = PairedRunner(settings, generator, None, {}, tmp_path)  # type: ignore[arg-type]
    baseline = Scenario("baseline", "bare", server="baseline")
    pair = runner.pair(
        Ready(case, tmp_path / "case", CASE_PORT),
        Ready(baseline, tmp_path / "baseline", BASELINE_PORT),
    )
    return generator.calls, len(pair.rounds)


def test_a_case_alternates_with_the_baseline_in_short_rounds(tmp_path: Path) -> None:
    calls, rounds = measure(Scenario("quick", "a fast request"), tmp_path)
    assert rounds == 5
    b, c = BASELINE_PORT, CASE_PORT
    assert [port for port, _ in calls] == [b, c, c, b, b, c, c, b, b, c]
    assert {seconds for _, seconds in calls} == {2}


def test_a_slow_case_and_its_baseline_take_one_round_of_the_whole_duration(
    tmp_path: Path,
) -> None:
    calls, rounds = measure(Scenario("slow", "a slow request", one_round=True), tmp_path)
    assert rounds == 1
    assert calls == [(BASELINE_PORT, 10), (CASE_PORT, 10)]


def test_login_is_measured_in_one_round() -> None:
    (login,) = [scenario for scenario in SCENARIOS if scenario.name == "login"]
    assert login.one_round
