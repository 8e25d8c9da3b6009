"""The scale figures: each point against the same case at 10k cases, and the 1.5x target."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import scale


def outcome(rps: float, p50: float, p99: float, mean: float, status: str = "ok") -> dict[str, Any]:
    return {"status": status, "rps": rps, "latency_ms": {"p50": p50, "p99": p99, "mean": mean}}


def test_each_point_is_a_ratio_to_its_10k_point() -> None:
    found = scale.figures(
        {
            "case_search_document_10k": outcome(200.0, 100.0, 600.0, 150.0),
            "case_search_document_100k": outcome(190.0, 110.0, 540.0, 160.0),
            "case_search_document_1m": outcome(180.0, 140.0, 900.0, 300.0),
            "case_read_10k": outcome(100.0, 50.0, 400.0, 80.0),
            "case_read_1m": outcome(50.0, 100.0, 800.0, 160.0),
        }
    )
    assert found["case_search_document_100k"] == {
        "p50_ratio": 1.1,
        "p99_ratio": 0.9,
        "mean_ratio": 1.067,
        "rps_ratio": 0.95,
    }
    assert found["case_search_document_1m"]["target"] == {"max_p50_ratio": 1.5, "met": True}
    assert found["case_read_1m"]["p50_ratio"] == 2.0
    assert "target" not in found["case_read_1m"]  # the issue sets the 1.5x target on search
    assert set(found) == {
        "case_search_document_100k",
        "case_search_document_1m",
        "case_read_1m",
    }


@pytest.mark.parametrize(
    ("p50_at_1m", "met"), [(149.0, True), (150.0, True), (151.0, False)], ids=str
)
def test_search_at_1m_meets_the_target_within_one_and_a_half_times(
    p50_at_1m: float, met: bool
) -> None:
    found = scale.figures(
        {
            "case_search_document_10k": outcome(200.0, 100.0, 600.0, 150.0),
            "case_search_document_1m": outcome(200.0, p50_at_1m, 600.0, 150.0),
        }
    )
    assert found["case_search_document_1m"]["target"]["met"] is met


def test_points_without_a_measured_pair_give_no_figure() -> None:
    found = scale.figures(
        {
            "case_read_10k": outcome(0, 0, 0, 0, status="failed"),
            "case_read_1m": outcome(50.0, 100.0, 800.0, 160.0),
            "case_intake_10k": outcome(80.0, 300.0, 1200.0, 400.0),
            "case_intake_1m": {"status": "skipped", "reason": "scale point"},
        }
    )
    assert found == {}
    assert scale.render({"sqlite": {"scale": found}}) == []


def test_render_names_backend_point_ratios_and_verdict() -> None:
    sections = {
        "postgresql": {
            "scale": scale.figures(
                {
                    "case_search_document_10k": outcome(90.0, 262.0, 400.0, 300.0),
                    "case_search_document_1m": outcome(89.0, 420.0, 500.0, 310.0),
                }
            )
        }
    }
    lines = scale.render(sections)
    assert lines[1].startswith("scale")
    assert "postgresql" in lines[2]
    assert "case_search_document_1m" in lines[2]
    assert "p50 x1.60" in lines[2]
    assert "MISSED" in lines[2]
