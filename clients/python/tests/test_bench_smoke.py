"""The field client's benchmark (``make bench``) at its smallest sizes: shape, not figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sync_harness import REPO_ROOT, server_has_sync

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not server_has_sync(), reason="this server has no sync API"),
]


def test_the_benchmark_reports_initial_sync_memory_and_push(tmp_path: Path) -> None:
    out = tmp_path / "field.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "benchmarks" / "field_client_bench.py"),
            "--out",
            str(out),
            "--cases",
            "40",
            "--small",
            "10",
            "--edits",
            "15",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["initial_sync"]["cases"] == 40
    assert results["initial_sync"]["checkpoint_ok"] is True
    assert results["memory"]["small_cases"] == 10
    assert results["memory"]["large_max_rss_kib"] > 0
    assert results["push"]["mutations"] == 15
    assert results["push"]["checkpoint_ok"] is True
