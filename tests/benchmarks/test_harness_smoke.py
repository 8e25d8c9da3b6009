"""Smoke tests of the benchmark harness: real gunicorn on loopback, about a second of load.

They check the machinery and the shape of the results, not the figures: a
shared test machine gives no stable throughput.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import request_file, synthetic
from benchmarks.__main__ import main
from benchmarks.context import BenchContext, SetupError
from benchmarks.databases import BenchDatabase
from benchmarks.gunicorn_server import GunicornConfig, GunicornServer
from benchmarks.load import LoadResult, PythonLoad, WrkLoad, wrk_version
from benchmarks.settings import from_environ

LATENCY_KEYS = {"p50", "p90", "p99", "max", "mean"}


def _available_loadgen() -> str:
    return "wrk" if shutil.which("wrk") else "python"


def test_a_run_writes_every_figure_and_reports_skipped_cases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_WORKERS", "1")  # one worker per server boots faster
    monkeypatch.delenv("BENCH_SCALE", raising=False)
    output = tmp_path / "latest.json"
    status = main(
        [
            "--backends=sqlite",
            "--scenarios=healthz,case_search_document_1m",
            "--duration=1",
            "--rounds=1",
            "--warmup=0",
            f"--loadgen={_available_loadgen()}",
            "--no-install",
            "--skip-suites",
            f"--output={output}",
        ]
    )

    assert status == 0
    results = json.loads(output.read_text())
    assert set(results) >= {"generated_at", "machine", "settings", "gunicorn", "http", "suites"}
    assert results["machine"]["cpus"] == os.cpu_count()
    assert {"python", "sqlite", "postgresql", "commit"} <= set(results["machine"])
    assert results["gunicorn"]["worker_class"] == "gthread"
    assert results["gunicorn"]["workers"] == 1
    assert results["load_generator"]["name"] == _available_loadgen()

    section = results["http"]["sqlite"]
    assert section["status"] == "ok"
    assert section["database"]["backend"] == "sqlite"
    assert section["baseline"]["rps"] > 0
    healthz = section["scenarios"]["healthz"]
    assert healthz["status"] == "ok", healthz
    assert healthz["requests"] > 0
    assert set(healthz["latency_ms"]) == LATENCY_KEYS
    assert 0 < healthz["latency_ms"]["p50"] <= healthz["latency_ms"]["p99"]
    assert healthz["ratio_to_baseline"] > 0
    assert healthz["paired_baseline"]["rps"] > 0
    scale_point = section["scenarios"]["case_search_document_1m"]
    assert scale_point["status"] == "skipped"
    assert scale_point["reason"].startswith("scale point, run with BENCH_SCALE=1")


def test_bad_settings_stop_the_run_before_any_server_starts(tmp_path: Path) -> None:
    output = tmp_path / "latest.json"
    arguments = ["--scenarios=no_such_case", "--no-install", "--skip-suites", f"--output={output}"]
    assert main(arguments) == 2
    assert not output.exists()


@pytest.fixture(scope="module")
def baseline_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    workdir = tmp_path_factory.mktemp("baseline")
    server = GunicornServer(
        "benchmarks.baseline_app:app",
        GunicornConfig(workers=1, threads=4),
        env=dict(os.environ),
        workdir=workdir,
        ready_path="/bare",
    )
    with server:
        yield server


def _body_pool(tmp_path: Path) -> Path:
    """Several POST bodies: the per-request generator path of both load generators."""
    pool = request_file.RequestPool(
        method="POST",
        headers={"Content-Type": "application/json"},
        items=tuple(("/bare", request_file.json_body(b)) for b in synthetic.document_searches(20)),
    )
    path = tmp_path / "post.requests"
    request_file.write(path, pool)
    assert request_file.read(path) == pool
    return path


def _assert_clean(result: LoadResult) -> None:
    assert result.requests > 0
    assert result.error_count == 0, result.errors
    assert 0 < result.latency_ms["p50"] <= result.latency_ms["p99"] <= result.latency_ms["max"]


def test_python_fallback_generator_cycles_bodies(
    baseline_server: GunicornServer, tmp_path: Path
) -> None:
    generator = PythonLoad(connections=4, threads=2)
    _assert_clean(generator.run(baseline_server.port, _body_pool(tmp_path), 1))


def test_wrk_generator_cycles_bodies(baseline_server: GunicornServer, tmp_path: Path) -> None:
    executable = shutil.which("wrk")
    if executable is None:
        pytest.skip("wrk is not installed here (make bench installs it); Python fallback tested")
    generator = WrkLoad(executable, connections=4, threads=2, version=wrk_version(executable))
    _assert_clean(generator.run(baseline_server.port, _body_pool(tmp_path), 1))


def test_setup_that_runs_out_of_time_fails_its_case_not_the_run(tmp_path: Path) -> None:
    """A seeding step over its bound raises SetupError, which fails one case and moves on."""
    context = BenchContext(
        settings=from_environ({}),
        database=BenchDatabase("sqlite"),
        instance_path=tmp_path,
        service_env={**os.environ, "CASEWORK_INSTANCE_PATH": str(tmp_path)},
        service_port=1,
        in_app_timeout_s=0.01,
    )
    with pytest.raises(SetupError, match=r"did not finish in 0\.01 s"):
        context.call_in_app("benchmarks.case_setup:seed_more", count=1, office="x", seed=1)
