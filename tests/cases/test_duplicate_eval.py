"""The duplicate-detection evaluation on a CI-sized set: fails when recall or precision regress.

The full set (``make eval-duplicates``) runs ~4,000 pairs against 10k and 100k
cases; here ~300 pairs go through the same intake path in the test database.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from benchmarks.duplicate_pairs import MUST_MATCH, MUST_NOT_MATCH, pairs
from benchmarks.eval_duplicates import OFFICE, register_pairs
from casework.authz.access import Principal
from casework.offices.models import Office

TRUE_PER_CLASS = 25
FALSE_PER_CLASS = 30
# The targets of the full evaluation, with room for the small sample's noise:
# one miss in 25 is 4%; one false alert in 30 is 3.3%.
MIN_RECALL = 0.92
MAX_FALSE_ALERTS = 0.034
MIN_PRECISION = 0.97


@pytest.fixture
def outcome(app: Flask, keyed_session: Session) -> object:
    keyed_session.add(Office(code=OFFICE, name="Evaluation", country_code="KOR"))
    keyed_session.flush()
    principal = Principal.for_role("caseworker", user_id="eval-worker", office=OFFICE)
    labelled = list(pairs(TRUE_PER_CLASS, FALSE_PER_CLASS, seed=5))
    with app.test_request_context():
        return register_pairs(keyed_session, principal, labelled, commit=False)


def test_recall_per_class_and_false_alerts_stay_within_targets(outcome: object) -> None:
    from benchmarks.eval_duplicates import Outcome

    assert isinstance(outcome, Outcome)
    recall = {kind: outcome.rate(kind) for kind in MUST_MATCH}
    false_alerts = {kind: outcome.rate(kind) for kind in MUST_NOT_MATCH}
    assert all(len(outcome.found[k]) == TRUE_PER_CLASS for k in MUST_MATCH)
    assert all(len(outcome.found[k]) == FALSE_PER_CLASS for k in MUST_NOT_MATCH)
    assert min(recall.values()) >= MIN_RECALL, recall
    assert max(false_alerts.values()) <= MAX_FALSE_ALERTS, false_alerts
    assert outcome.precision() >= MIN_PRECISION


def test_the_evaluation_seeds_each_office_size_once_and_reports_json(tmp_path: Path) -> None:
    from benchmarks.eval_duplicates import main

    argv = ["--true-per-class", "1", "--false-per-class", "1", "--cost-sample", "2"]
    argv += ["--background", "40", "--background", "90", "--later-per-class", "1"]
    argv += ["--seed-dir", str(tmp_path), "--json"]
    runs = []
    for _ in range(2):
        output = io.StringIO()
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(io.StringIO()):
            main(argv)
        runs.append(json.loads(output.getvalue()))
    first, second = ([p["seeding"] for p in run["points"]] for run in runs)
    # 40 seeded, then 90 from the 40 (50 more); the second run seeds nothing.
    assert [(s["seeded_now"], s["reused"]) for s in first] == [(40, 0), (50, 40)]
    assert [(s["seeded_now"], s["reused"]) for s in second] == [(0, 40), (0, 90)]
    point = runs[1]["points"][1]
    assert point["background"] == 90
    assert set(point["recall"]) == set(MUST_MATCH)
    assert set(point["false_alerts"]) == set(MUST_NOT_MATCH)
    assert point["cost"]["pairs"] == 2
    assert point["cost"]["with_detection_ms"]["cpu_median"] > 0
    # the two runs measured the same office: the same pairs found
    assert runs[0]["points"][1]["recall"] == point["recall"]
