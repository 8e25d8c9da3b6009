"""Run every benchmark and write ``benchmarks/results/latest.json``.

Figures are ratios measured in one run against a baseline in the same run,
because absolute numbers on a shared 2-core machine drift between runs.
"""

from __future__ import annotations

import importlib
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
SUITES: tuple[str, ...] = ()


def machine() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    import os
    import sqlite3

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "commit": commit,
    }


def main() -> int:
    results: dict[str, Any] = {"machine": machine(), "suites": {}}
    for name in SUITES:
        module = importlib.import_module(f"benchmarks.{name}")
        results["suites"][name] = module.run()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "latest.json"
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
