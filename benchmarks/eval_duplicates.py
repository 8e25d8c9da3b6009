"""``make eval-duplicates``: recall and false alerts of duplicate detection, and its cost.

Registers a labelled set of pairs (:mod:`benchmarks.duplicate_pairs`) through the
service's intake path (``casework.cases.service.intake``) in one office that
already holds ``--background`` unrelated cases from the same name pools, and
prints, per class, the share of pairs where the second registration reported
the first; then the cost: intake time with duplicate detection against the
same intakes without it, and candidate members decrypted per intake. Runs on
a throw-away SQLite database (or ``--database-url``), with synthetic data only.

    python -m benchmarks.eval_duplicates --true-per-class 300 --false-per-class 500 \\
        --background 10000 --background 100000 --later-per-class 100
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from benchmarks.duplicate_pairs import MUST_MATCH, MUST_NOT_MATCH, Pair, background, household_of

OFFICE = "eval-01"
RECALL_TARGET = 0.95
FALSE_ALERT_TARGET = 0.02
COST_TARGET = 1.5


@dataclass
class Outcome:
    """What one run measured."""

    found: dict[str, list[bool]] = field(default_factory=lambda: defaultdict(list))
    seconds: list[float] = field(default_factory=list)
    decrypted: list[int] = field(default_factory=list)

    def rate(self, kind: str) -> float:
        results = self.found[kind]
        return sum(results) / len(results) if results else 0.0

    def precision(self) -> float:
        true_found = sum(sum(self.found[k]) for k in MUST_MATCH)
        false_found = sum(sum(self.found[k]) for k in MUST_NOT_MATCH)
        return true_found / (true_found + false_found) if true_found + false_found else 1.0


def register_pairs(
    session: Session,
    principal: Any,
    labelled: Iterable[Pair],
    *,
    detect: bool = True,
    commit: bool = True,
) -> Outcome:
    """Register each pair's two people through intake; record whether the second
    registration reported the first, the intake time and the candidates decrypted.
    ``commit`` after each pair (a test passes False and flushes instead)."""
    from casework.cases import duplicates, service

    outcome = Outcome()
    original = duplicates.find_duplicates
    if not detect:  # the same intake, with only the queue row of the cross-office scan

        def queue_only(session: Session, _principal: Any, case: Any) -> list[dict[str, Any]]:
            duplicates.queue_check(session, case)
            return []

        duplicates.find_duplicates = queue_only  # type: ignore[assignment]
    try:
        for pair in labelled:
            first = service.intake(session, principal, household_of(pair.first))
            session.flush()
            started = time.perf_counter()
            second = service.intake(session, principal, household_of(pair.second))
            session.flush()  # the writes a request commits; detection flushes them early
            outcome.seconds.append(time.perf_counter() - started)
            outcome.decrypted.append(int(session.info.get(duplicates.DECRYPTED_KEY, 0)))
            found = [d["reference"] for d in second.possible_duplicates]
            outcome.found[pair.kind].append(first.case.reference in found)
            if commit:
                session.commit()
            else:
                session.flush()
    finally:
        duplicates.find_duplicates = original  # type: ignore[assignment]
    return outcome


def measure_cost(
    session: Session, principal: Any, labelled: list[Pair], chunk: int = 20
) -> tuple[list[float], Outcome]:
    """Intake times with and without detection, in alternating chunks of ``chunk`` pairs,
    so that a change in the machine's load falls on both alike."""
    with_detection: list[float] = []
    bare = Outcome()
    for start in range(0, len(labelled), chunk):
        part = labelled[start : start + chunk]
        with_detection += register_pairs(session, principal, part).seconds
        bare.seconds += register_pairs(session, principal, part, detect=False).seconds
    return with_detection, bare


def seed_background(session: Session, count: int, seed: int) -> None:
    """Add ``count`` unrelated cases to the office through the bulk path (indexes included)."""
    from casework.cases.service import bulk_intake

    batch: list[dict[str, Any]] = []
    for household in background(count, seed=seed):
        batch.append(household)
        if len(batch) == 500:
            bulk_intake(session, OFFICE, batch)
            session.commit()
            batch = []
    if batch:
        bulk_intake(session, OFFICE, batch)
        session.commit()


def report(label: str, outcome: Outcome, bare: Outcome | None) -> list[str]:
    lines = [f"== {label}"]
    for kind in MUST_MATCH:
        rate = outcome.rate(kind)
        flag = "ok" if rate >= RECALL_TARGET else "BELOW TARGET"
        lines.append(f"  recall  {kind:32s} {rate:7.2%}  n={len(outcome.found[kind])}  {flag}")
    for kind in MUST_NOT_MATCH:
        rate = outcome.rate(kind)
        flag = "ok" if rate <= FALSE_ALERT_TARGET else "ABOVE TARGET"
        lines.append(f"  false   {kind:32s} {rate:7.2%}  n={len(outcome.found[kind])}  {flag}")
    lines.append(f"  precision {outcome.precision():.2%}")
    median = statistics.median(outcome.seconds) * 1000
    lines.append(
        f"  intake with detection: median {median:.2f} ms, "
        f"mean {statistics.fmean(outcome.seconds) * 1000:.2f} ms; "
        f"candidates decrypted per intake: mean {statistics.fmean(outcome.decrypted):.2f}, "
        f"max {max(outcome.decrypted)}"
    )
    if bare is not None:
        bare_median = statistics.median(bare.seconds) * 1000
        ratio = median / bare_median
        flag = "ok" if ratio <= COST_TARGET else "ABOVE TARGET"
        lines.append(
            f"  intake without detection: median {bare_median:.2f} ms; ratio {ratio:.2f}x  {flag}"
        )
    return lines


def _pairs(args: argparse.Namespace, seed: int, first: bool) -> list[Pair]:
    from benchmarks.duplicate_pairs import pairs

    if first or args.later_per_class is None:
        return list(pairs(args.true_per_class, args.false_per_class, seed=seed))
    return list(pairs(args.later_per_class, args.later_per_class, seed=seed))


def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> None:
    from casework import create_app, db, migrate
    from casework.authz.access import Principal
    from casework.db import make_engine
    from casework.offices.models import Office
    from casework.security.app import ensure_keyring, holder
    from casework.security.case_keys import attach_keyring

    folder = tempfile.mkdtemp(prefix="casework-eval-")
    url = args.database_url or f"sqlite:///{folder}/eval.db"
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    migrate.upgrade(engine)
    app = create_app({"database_url": url, "instance_path": folder})
    ensure_keyring(app)
    principal = Principal.for_role("caseworker", user_id="eval-worker", office=OFFICE)
    with app.app_context():
        session = db.session()
        attach_keyring(session, holder(app).get())
        session.add(Office(code=OFFICE, name="Evaluation", country_code="KOR"))
        session.commit()
        seeded = 0
        for step, target in enumerate(sorted(args.background)):
            started = time.perf_counter()
            seed_background(session, target - seeded, seed=100 + step)
            seeded = target
            out(f"(seeded {target} background cases in {time.perf_counter() - started:.0f} s)")
            labelled = _pairs(args, seed=21 + step, first=step == 0)
            outcome = register_pairs(session, principal, labelled)
            outcome.seconds, bare = measure_cost(session, principal, labelled[: args.cost_sample])
            total_true = sum(len(outcome.found[k]) for k in MUST_MATCH)
            total_false = sum(len(outcome.found[k]) for k in MUST_NOT_MATCH)
            label = (
                f"{target} background cases (+ pairs registered so far); "
                f"{total_true} true pairs, {total_false} false pairs"
            )
            for line in report(label, outcome, bare):
                out(line)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--true-per-class", type=int, default=300)
    parser.add_argument("--false-per-class", type=int, default=500)
    parser.add_argument("--background", type=int, action="append", default=None)
    parser.add_argument("--cost-sample", type=int, default=600)
    parser.add_argument(
        "--later-per-class",
        type=int,
        default=None,
        help="pairs per class at the larger office sizes (default: the same as the first)",
    )
    parser.add_argument("--database-url", default="")
    args = parser.parse_args(argv)
    args.background = args.background or [10_000, 100_000]
    run(args)


if __name__ == "__main__":
    main()
