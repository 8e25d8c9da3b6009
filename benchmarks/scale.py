"""The scale figures: each scale point measured against the same case at 10,000 cases.

A case that stays near 1 at 100k and 1M is indexed, not scanned. Latency at
32 connections is mostly queueing, so the throughput ratio (the inverse of
the time each request holds the serial section) is given beside the
latency ratios; on SQLite the median swings with which worker holds the
write lock (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

BASE = "10k"
SIZES = ("100k", "1m")
CASES = ("case_search_document", "case_read", "case_intake")
#: Search at 1M cases within 1.5x of its latency at 10k (p50).
TARGETS = {("case_search_document", "1m"): 1.5}


def figures(scenarios: Mapping[str, Any]) -> dict[str, Any]:
    """Ratios of each measured scale point to its 10k point: p50, p99, mean latency and req/s."""
    found: dict[str, Any] = {}
    for case in CASES:
        base = scenarios.get(f"{case}_{BASE}")
        if not _measured(base):
            continue
        for size in SIZES:
            point = scenarios.get(f"{case}_{size}")
            if not _measured(point):
                continue
            entry: dict[str, Any] = {
                f"{name}_ratio": _ratio(point["latency_ms"][name], base["latency_ms"][name])
                for name in ("p50", "p99", "mean")
            }
            entry["rps_ratio"] = _ratio(point["rps"], base["rps"])
            limit = TARGETS.get((case, size))
            if limit is not None:
                p50 = entry["p50_ratio"]
                entry["target"] = {"max_p50_ratio": limit, "met": p50 is not None and p50 <= limit}
            found[f"{case}_{size}"] = entry
    return found


def render(sections: Mapping[str, Any]) -> list[str]:
    """One line per scale point measured with its 10k point; nothing when none was."""
    lines: list[str] = []
    for backend, section in sections.items():
        for name, entry in section.get("scale", {}).items():
            verdict = ""
            if "target" in entry:
                target = entry["target"]
                met = "met" if target["met"] else "MISSED"
                verdict = f"  target p50 <= x{target['max_p50_ratio']}: {met}"
            lines.append(
                f"  {backend:<11} {name:<26} p50 {_times(entry['p50_ratio'])}"
                f"  p99 {_times(entry['p99_ratio'])}  mean {_times(entry['mean_ratio'])}"
                f"  req/s {_times(entry['rps_ratio'])}{verdict}"
            )
    return (
        ["", f"scale (each point against the same case at {BASE} cases):", *lines] if lines else []
    )


def _measured(outcome: Mapping[str, Any] | None) -> bool:
    return outcome is not None and outcome.get("status") == "ok" and outcome.get("rps", 0) > 0


def _ratio(value: float, base: float) -> float | None:
    return round(value / base, 3) if base else None


def _times(ratio: float | None) -> str:
    return "x-" if ratio is None else f"x{ratio:.2f}"
