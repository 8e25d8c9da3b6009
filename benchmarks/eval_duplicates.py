"""``make eval-duplicates``: recall and false alerts of duplicate detection, and its cost.

Registers a labelled set of pairs (:mod:`benchmarks.duplicate_pairs`) through the
service's intake path (``casework.cases.service.intake``) in one office that
already holds ``--background`` unrelated cases from the same name pools, and
prints, per class, the share of pairs where the second registration reported
the first; then the cost: intake time (wall and CPU) with duplicate detection
against the same intakes without it, and candidate members decrypted per
intake. Synthetic data only.

On SQLite (the default) each office size is seeded once, through the bulk
path, into ``--seed-dir`` (with the keyring it was encrypted under) and
copied for every run: the 100,000-case point costs its seeding only the first
time, and a larger size starts from the largest smaller one. A snapshot is
named by a fingerprint of what its blind-index entries depend on (name rules,
romanisation table, index code, the pair generator), so a change there seeds
afresh. With ``--database-url`` (PostgreSQL) the office is seeded in place,
each size on top of the last. ``--json`` prints one JSON document.

    python -m benchmarks.eval_duplicates --true-per-class 300 --false-per-class 500 \\
        --background 10000 --background 100000 --later-per-class 100 \\
        --seed-dir benchmarks/results/eval-duplicates --json
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
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
    cpu_seconds: list[float] = field(default_factory=list)
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
    profile: cProfile.Profile | None = None,
) -> Outcome:
    """Register each pair's two people through intake; record whether the second
    registration reported the first, the intake time (wall and CPU) and the candidates
    decrypted. ``commit`` after each pair (a test passes False and flushes instead);
    ``profile`` collects the detection step of every intake (it inflates their times:
    the evaluation profiles the recall pass, whose times it does not report)."""
    from casework.cases import duplicates, service

    outcome = Outcome()
    original = duplicates.find_duplicates
    if not detect:  # the same intake, with only the queue row of the cross-office scan

        def queue_only(session: Session, _principal: Any, case: Any, *_: Any) -> list[Any]:
            duplicates.queue_check(session, case)
            return []

        duplicates.find_duplicates = queue_only  # type: ignore[assignment]
    elif profile is not None:

        def profiled(*args: Any) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = profile.runcall(original, *args)
            return found

        duplicates.find_duplicates = profiled  # type: ignore[assignment]
    try:
        for pair in labelled:
            first = service.intake(session, principal, household_of(pair.first))
            session.flush()
            started, started_cpu = time.perf_counter(), time.process_time()
            second = service.intake(session, principal, household_of(pair.second))
            session.flush()  # the writes a request commits; detection flushes them early
            outcome.seconds.append(time.perf_counter() - started)
            outcome.cpu_seconds.append(time.process_time() - started_cpu)
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
    session: Session,
    principal: Any,
    labelled: list[Pair],
    chunk: int = 20,
) -> tuple[Outcome, Outcome]:
    """Intake times with and without detection, in alternating chunks of ``chunk`` pairs,
    so that a change in the machine's load falls on both alike."""
    detected, bare = Outcome(), Outcome()
    for start in range(0, len(labelled), chunk):
        part = labelled[start : start + chunk]
        timed = register_pairs(session, principal, part)
        detected.seconds += timed.seconds
        detected.cpu_seconds += timed.cpu_seconds
        detected.decrypted += timed.decrypted
        timed = register_pairs(session, principal, part, detect=False)
        bare.seconds += timed.seconds
        bare.cpu_seconds += timed.cpu_seconds
    return detected, bare


#: The background stream: one seed for every size, so a larger office holds the smaller
#: one's cases plus more (a snapshot of 10k is the start of the one of 100k).
BACKGROUND_SEED = 100
SEED_BATCH = 500
FINGERPRINT_SAMPLE = 2000


def seed_background(session: Session, start: int, target: int) -> None:
    """Add cases ``start`` to ``target`` - 1 of the background stream to the office, through
    the bulk path (:func:`casework.cases.service.bulk_register`: indexes included, one
    access-log entry per batch), committing each batch."""
    from casework.cases.seeding import settle
    from casework.cases.service import bulk_register

    stream = background(target, seed=BACKGROUND_SEED)
    for _ in range(start):
        next(stream)
    batch: list[dict[str, Any]] = []
    for household in stream:
        batch.append(household)
        if len(batch) == SEED_BATCH:
            bulk_register(session, OFFICE, batch, audit_each=False)
            session.commit()
            batch = []
    if batch:
        bulk_register(session, OFFICE, batch, audit_each=False)
        session.commit()
    settle(session)  # PostgreSQL: statistics for the planner before anything is measured


def fingerprint() -> str:
    """What a seeded snapshot's data depends on, hashed: the first background households,
    the index keys their members are stored under (so a change of the name rules or the
    romanisation table seeds afresh, and a change elsewhere in the code does not), the
    index widths, the HMAC code and the schema."""
    import casework.security.blind_index
    from casework import migrate
    from casework.cases import indexes

    digest = hashlib.sha256()
    for household in background(FINGERPRINT_SAMPLE, seed=BACKGROUND_SEED):
        digest.update(json.dumps(household, sort_keys=True, default=str).encode())
        for member in household["members"]:
            probes = sorted(indexes.member_probes(member), key=lambda p: (p.index, p.parts))
            digest.update(repr(probes).encode())
    digest.update(repr(sorted(indexes.BITS.items())).encode())
    digest.update(Path(casework.security.blind_index.__file__).read_bytes())
    digest.update(" ".join(sorted(migrate.head_revisions())).encode())
    return digest.hexdigest()[:12]


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a closed SQLite database (its WAL included), mode 0600."""
    for stale in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
        stale.unlink(missing_ok=True)
    os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


@dataclass
class Opened:
    """An application on one evaluation database, its session and the caseworker."""

    app: Any
    session: Session
    principal: Any


class Workspace:
    """Where the evaluation's databases live and how they are opened."""

    def __init__(self, folder: Path, database_url: str = "") -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.instance = folder / "instance"
        self.database_url = database_url
        self.seeded = 0  # in place (PostgreSQL): the size the database holds

    @property
    def sqlite(self) -> bool:
        return not self.database_url

    @functools.cached_property
    def fingerprint(self) -> str:
        return fingerprint()

    def _snapshot(self, size: int) -> Path:
        return self.folder / f"background-{self.fingerprint}-{size}.db"

    def _open(self, url: str) -> Opened:
        from casework import create_app, db, migrate
        from casework.authz.access import Principal
        from casework.db import make_engine
        from casework.offices.models import Office
        from casework.security.app import ensure_keyring, holder
        from casework.security.case_keys import attach_keyring

        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        app = create_app({"database_url": url, "instance_path": str(self.instance)})
        ensure_keyring(app)
        context = app.app_context()
        context.push()
        session = db.session()
        attach_keyring(session, holder(app).get())
        if session.get(Office, OFFICE) is None:
            session.add(Office(code=OFFICE, name="Evaluation", country_code="KOR"))
            session.commit()
        principal = Principal.for_role("caseworker", user_id="eval-worker", office=OFFICE)
        opened = Opened(app, session, principal)
        opened.app.extensions["casework.eval.context"] = context
        return opened

    @staticmethod
    def close(opened: Opened) -> None:
        from casework.db import get_db

        opened.session.close()
        engine = get_db(opened.app).engine
        opened.app.extensions.pop("casework.eval.context").pop()
        engine.dispose()

    def open_at(self, size: int, out: Callable[[str], None]) -> tuple[Opened, dict[str, Any]]:
        """The office holding ``size`` background cases, seeded or copied; and how."""
        started = time.perf_counter()
        if not self.sqlite:
            opened = self._open(self.database_url)
            seed_background(opened.session, self.seeded, size)
            info = {"seeded_now": size - self.seeded, "reused": self.seeded}
            self.seeded = size
        else:
            snapshot = self._snapshot(size)
            info = {"seeded_now": 0, "reused": size}
            if not snapshot.exists():
                info = self._seed_snapshot(size, snapshot)
            work = self.folder / "eval.db"
            _copy_sqlite(snapshot, work)
            opened = self._open(f"sqlite:///{work}")
        info["seconds"] = round(time.perf_counter() - started, 1)
        out(
            f"(office at {size} background cases: {info['seeded_now']} seeded now, "
            f"{info['reused']} reused, {info['seconds']:.0f} s)"
        )
        return opened, info

    def _seed_snapshot(self, size: int, snapshot: Path) -> dict[str, Any]:
        prefix = f"background-{self.fingerprint}-"
        smaller = sorted(
            (int(path.stem[len(prefix) :]), path)
            for path in self.folder.glob(f"{prefix}*.db")
            if path.stem[len(prefix) :].isdigit() and int(path.stem[len(prefix) :]) < size
        )
        seeding = self.folder / "seeding.db"
        start = 0
        if smaller:
            start, source = smaller[-1]
            _copy_sqlite(source, seeding)
        else:
            for stale in (seeding, Path(f"{seeding}-wal"), Path(f"{seeding}-shm")):
                stale.unlink(missing_ok=True)
        opened = self._open(f"sqlite:///{seeding}")
        try:
            seed_background(opened.session, start, size)
        finally:
            self.close(opened)
        _copy_sqlite(seeding, snapshot)
        seeding.unlink()
        return {"seeded_now": size - start, "reused": start}


def _median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 3) if values else 0.0


def summary(outcome: Outcome, cost: Outcome, bare: Outcome) -> dict[str, Any]:
    """What one office size measured, as JSON-ready data."""
    wall, cpu = _median_ms(cost.seconds), _median_ms(cost.cpu_seconds)
    bare_wall, bare_cpu = _median_ms(bare.seconds), _median_ms(bare.cpu_seconds)
    return {
        "recall": {k: round(outcome.rate(k), 4) for k in MUST_MATCH},
        "false_alerts": {k: round(outcome.rate(k), 4) for k in MUST_NOT_MATCH},
        "pairs": {k: len(outcome.found[k]) for k in (*MUST_MATCH, *MUST_NOT_MATCH)},
        "precision": round(outcome.precision(), 4),
        "candidates_decrypted": {
            "mean": round(statistics.fmean(outcome.decrypted), 3) if outcome.decrypted else 0,
            "max": max(outcome.decrypted, default=0),
        },
        "cost": {
            "pairs": len(cost.seconds),
            "candidates_decrypted_mean": (
                round(statistics.fmean(cost.decrypted), 3) if cost.decrypted else 0
            ),
            "with_detection_ms": {"wall_median": wall, "cpu_median": cpu},
            "without_detection_ms": {"wall_median": bare_wall, "cpu_median": bare_cpu},
            "ratio_wall": round(wall / bare_wall, 3) if bare_wall else None,
            "ratio_cpu": round(cpu / bare_cpu, 3) if bare_cpu else None,
        },
    }


def report(label: str, result: dict[str, Any]) -> Iterator[str]:
    """Human-readable lines of one :func:`summary`."""
    yield f"== {label}"
    for kind, rate in result["recall"].items():
        flag = "ok" if rate >= RECALL_TARGET else "BELOW TARGET"
        yield f"  recall  {kind:32s} {rate:7.2%}  n={result['pairs'][kind]}  {flag}"
    for kind, rate in result["false_alerts"].items():
        flag = "ok" if rate <= FALSE_ALERT_TARGET else "ABOVE TARGET"
        yield f"  false   {kind:32s} {rate:7.2%}  n={result['pairs'][kind]}  {flag}"
    yield f"  precision {result['precision']:.2%}"
    decrypted = result["candidates_decrypted"]
    yield (
        f"  candidates decrypted per intake: mean {decrypted['mean']:.2f}, max {decrypted['max']}"
    )
    cost = result["cost"]
    if cost["pairs"]:
        with_, without = cost["with_detection_ms"], cost["without_detection_ms"]
        for kind in ("wall", "cpu"):
            ratio = cost[f"ratio_{kind}"] or 0.0
            flag = "ok" if ratio <= COST_TARGET else "ABOVE TARGET"
            yield (
                f"  intake {kind:4s} median: {with_[f'{kind}_median']:.2f} ms with detection, "
                f"{without[f'{kind}_median']:.2f} ms without; ratio {ratio:.2f}x  {flag}"
            )


def _cost_pairs(count: int, seed: int) -> list[Pair]:
    """``count`` pairs of every class in turn, none of them registered before: the intakes
    timed meet the office as a new registration does (the same ~0.7 candidates per
    intake as the recall run), not copies of themselves from earlier passes."""
    from benchmarks.duplicate_pairs import pairs

    per_class = -(-count // (len(MUST_MATCH) + len(MUST_NOT_MATCH)))
    return list(pairs(per_class, per_class, seed=seed))[:count]


def _pairs(args: argparse.Namespace, seed: int, first: bool) -> list[Pair]:
    from benchmarks.duplicate_pairs import pairs

    if first or args.later_per_class is None:
        return list(pairs(args.true_per_class, args.false_per_class, seed=seed))
    return list(pairs(args.later_per_class, args.later_per_class, seed=seed))


def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Every office size in turn; returns the JSON document (also printed as lines)."""
    if args.seed_dir:
        folder = Path(args.seed_dir)
    else:
        folder = Path(tempfile.mkdtemp(prefix="casework-eval-"))
    workspace = Workspace(folder, args.database_url)
    if not workspace.sqlite:
        _reset_schema(args.database_url)
    document: dict[str, Any] = {
        "command": "python -m benchmarks.eval_duplicates " + " ".join(args.argv),
        "database": "sqlite" if workspace.sqlite else "postgresql",
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "points": [],
    }
    profile = cProfile.Profile(time.process_time) if args.profile else None
    try:
        for step, size in enumerate(sorted(args.background)):
            opened, seeded = workspace.open_at(size, out)
            try:
                labelled = _pairs(args, seed=21 + step, first=step == 0)
                outcome = register_pairs(
                    opened.session, opened.principal, labelled, profile=profile
                )
                cost, bare = measure_cost(
                    opened.session, opened.principal, _cost_pairs(args.cost_sample, 71 + step)
                )
            finally:
                workspace.close(opened)
            result = {"background": size, "seeding": seeded, **summary(outcome, cost, bare)}
            result["load_average"] = [round(x, 2) for x in os.getloadavg()]
            document["points"].append(result)
            label = (
                f"{size} background cases; {sum(len(outcome.found[k]) for k in MUST_MATCH)} "
                f"true pairs, {sum(len(outcome.found[k]) for k in MUST_NOT_MATCH)} false pairs "
                f"(load {result['load_average'][0]})"
            )
            for line in report(label, result):
                out(line)
    finally:
        if not args.seed_dir:
            shutil.rmtree(folder, ignore_errors=True)
    if profile is not None:
        profile.dump_stats(args.profile)
        out(f"(profile of the detection step, CPU time: {args.profile})")
    return document


def _reset_schema(url: str) -> None:
    from casework.db import make_engine

    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
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
    parser.add_argument("--database-url", default="", help="PostgreSQL (default: SQLite)")
    parser.add_argument(
        "--seed-dir",
        default="",
        help="keep seeded SQLite offices (and their keyring) here and reuse them",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--profile", default="", help="write a cProfile (CPU time) of the detection step here"
    )
    raw = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(raw)
    args.argv = raw
    args.background = args.background or [10_000, 100_000]
    if args.json:
        document = run(args, out=lambda line: print(line, file=sys.stderr, flush=True))
        print(json.dumps(document, indent=2))
    else:
        run(args, out=lambda line: print(line, flush=True))


if __name__ == "__main__":
    main()
