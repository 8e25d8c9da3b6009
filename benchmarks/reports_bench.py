"""How long a report over 100,000 cases takes: the issue's target is at most 10 s.

Seeds a throw-away database (SQLite in a temporary folder, or the PostgreSQL
database named by ``--database-url``) with synthetic households through the
bulk path, spreads them over offices, months and stages, adds sealed
resettlement and decision steps for a fifth of them, then times each report
end to end as a request computes it (read the ciphertext, decrypt in batches
on ``reports_workers`` processes, suppress, tabulate), wall-clock, best of
``--repeat``, with the CPU seconds of that run (this process and its worker
processes' batches: on a machine shared with other work the wall clock includes
other work's time, the CPU seconds do not; with two workers, half the CPU
seconds plus the reading is what an idle 2-core machine takes). Also reported:
the single-process run, so the gain of the worker processes shows.

Usage, from the repository root::

    python benchmarks/reports_bench.py --out reports_bench.json [--cases 100000]

``make bench`` runs it with 20,000 cases (``SUITE_ARGS`` in ``benchmarks/__main__.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select, update

from casework import create_app, migrate
from casework.cases.codes import Stage
from casework.cases.models import Case
from casework.cases.seeding import seed_cases
from casework.db import get_db, make_engine
from casework.reports import service
from casework.reports.codes import FunnelStep, ReportName
from casework.reports.models import ReportEvent
from casework.security.app import ensure_keyring, holder
from casework.security.case_keys import attach_keyring
from casework.workflow.codes import SubmissionCategory

TARGET_S = 10.0
OFFICES = ("rb-north", "rb-south", "rb-east", "rb-west")
EVENT_SHARE = 0.2


def _months(count: int) -> list[datetime]:
    now = datetime.now(UTC)
    out = []
    for back in range(count):
        year, month = divmod(now.year * 12 + now.month - 1 - back, 12)
        out.append(datetime(year, month + 1, 5, tzinfo=UTC))
    return out


def seed(app: Any, cases: int) -> float:
    """Seed ``cases`` synthetic households and their steps; return the seconds it took."""
    started = time.perf_counter()
    rng = random.Random(22)
    months = _months(24)
    with app.app_context(), get_db(app).session_factory() as session:
        attach_keyring(session, holder(app).get())
        per_office = cases // len(OFFICES)
        for number, office in enumerate(OFFICES, start=1):
            seed_cases(session, count=per_office, office=office, seed=number, batch_size=1000)
        ids = session.scalars(select(Case.id)).all()
        stages = [s.value for s in Stage]
        session.execute(
            update(Case),
            [
                {"id": case_id, "stage": rng.choice(stages), "created_at": rng.choice(months)}
                for case_id in ids
            ],
        )
        session.commit()
        categories = [c.value for c in SubmissionCategory]
        sample = rng.sample(list(ids), int(len(ids) * EVENT_SHARE))
        for start in range(0, len(sample), 2000):
            for case_id in sample[start : start + 2000]:
                funnel = ReportEvent(case_id=case_id, occurred_at=rng.choice(months))
                funnel.details = {
                    "kind": "funnel",
                    "step": rng.choice([s.value for s in FunnelStep]),
                    "categories": rng.sample(categories, rng.choice((1, 1, 2))),
                }
                decision = ReportEvent(case_id=case_id, occurred_at=rng.choice(months))
                decision.details = {
                    "kind": "decision",
                    "decision": "vetting",
                    "outcome": rng.choice(("cleared", "cleared", "referred_for_review")),
                }
                session.add_all([funnel, decision])
            session.commit()
            attach_keyring(session, holder(app).get())
    return time.perf_counter() - started


def _cpu() -> float:
    """CPU seconds of this process (the worker processes report their own)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def time_report(
    app: Any, name: str, workers: int, repeat: int, office: str | None
) -> tuple[float, float, float]:
    """Best wall-clock seconds of ``repeat`` runs, the CPU seconds of that run (this
    process and its workers), and those of this process alone."""
    spec = service.spec_for(name)
    best = (float("inf"), 0.0, 0.0)
    with app.app_context():
        settings = service.Settings(k=5, rounding=0, workers=workers)
        for _ in range(repeat):
            with get_db(app).session_factory() as session:
                attach_keyring(session, holder(app).get())
                workers_cpu: list[float] = []
                cpu, started = _cpu(), time.perf_counter()
                service.compute(session, spec, service.Filters(office), settings, workers_cpu)
                elapsed = time.perf_counter() - started
                own = _cpu() - cpu
                best = min(best, (elapsed, own + sum(workers_cpu), own))
    return best


def run(cases: int, repeat: int, database_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="casework-reports-bench-") as folder:
        url = database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        app = create_app({"database_url": url, "instance_path": str(Path(folder) / "instance")})
        ensure_keyring(app)
        seeding_s = seed(app, cases)
        results: dict[str, Any] = {}
        for name in ReportName:
            both, cpu, caller_cpu = time_report(app, name.value, 2, repeat, None)
            one, one_cpu, _ = time_report(app, name.value, 1, 1, None)
            office, _, _ = time_report(app, name.value, 2, 1, OFFICES[0])
            results[name.value] = {
                "seconds_two_workers": round(both, 3),
                "cpu_seconds_two_workers": round(cpu, 2),
                "cpu_seconds_caller_two_workers": round(caller_cpu, 2),
                "seconds_one_process": round(one, 3),
                "cpu_seconds_one_process": round(one_cpu, 2),
                "seconds_one_office": round(office, 3),
                "target_s": TARGET_S,
                "ok": both <= TARGET_S,
            }
            print(
                f"{name.value}: {both:.2f} s wall, {cpu:.2f} s CPU "
                f"(one process {one:.2f} s wall, {one_cpu:.2f} s CPU)",
                file=sys.stderr,
            )
        get_db(app).engine.dispose()
    return {
        "cases": cases,
        "backend": url.split(":", 1)[0],
        "seeding_s": round(seeding_s, 1),
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "reports": results,
        "ok": all(r["ok"] for r in results.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--database-url", default=None, help="PostgreSQL; default: SQLite")
    args = parser.parse_args(argv)
    figures = run(args.cases, args.repeat, args.database_url)
    args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
