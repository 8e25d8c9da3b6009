"""The access log's targets: group-commit appends, proofs at a million entries, verification.

Measures, in one run, on SQLite (casework's production pragmas) and, when
reachable, PostgreSQL:

* **appends per second under 32 concurrent writers** through the group
  committer, as read requests use it: each writer prepares one entry and waits
  until it is durable (committed), then the next; the mean batch, the batch
  time and the process CPU per append come with it (target >= 10,000/s); once
  with no wait (``audit_batch_max_wait_ms`` 0) and once with 2 ms, the default;
* **an inclusion proof and a consistency proof at 1,000,000 entries**, read from
  the tiles (target <= 10 ms), with the number of tile rows read;
* **verification from the database** of the whole million-entry log, in
  entries per second (target >= 100,000/s), as ``casework audit verify`` runs it.

Usage, from the repository root::

    python benchmarks/log_bench.py --out log_bench.json [--entries 1000000] [--no-postgres]
                                   [--seconds 10] [--appends-only] [--postgres URL]

``--postgres`` is the URL of a server (and a database) the benchmark may create
its own throw-away database from.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask import Flask
from sqlalchemy import text
from sqlalchemy.engine import make_url

from casework import create_app, db, migrate
from casework.audit import service, signer, store, tiles, verification
from casework.audit.encoding import GENESIS_HASH, AuditRecord
from casework.security.app import ensure_keyring

WRITERS = 32


def _draft(n: int) -> AuditRecord:
    return AuditRecord(
        seq=1,
        at=datetime.now(UTC),
        actor=f"user-{n % 50}",
        role="caseworker",
        office="bench-01",
        device=None,
        action="case.read",
        target=f"REF{n % 9973:08d}",
        fields=("family_name", "given_name"),
        outcome="success",
        request_id=f"{n:032x}",
    )


@contextmanager
def _app(url: str, folder: Path, **settings: Any) -> Iterator[Flask]:
    app = create_app({"database_url": url, "instance_path": str(folder), **settings})
    with app.app_context():
        migrate.upgrade(db.get_db().engine)
        ensure_keyring(app)  # the keys only: no first administrator in a benchmark
    try:
        yield app
    finally:
        db.get_db(app).engine.dispose()


@contextmanager
def _postgres(admin_url: str) -> Iterator[str]:
    from sqlalchemy import create_engine

    name = f"casework_logbench_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def group_commit_appends(app: Flask, seconds: float, max_wait_ms: float = 0) -> dict[str, Any]:
    committer = service.group_commit(app)
    committer.batches = committer.items = 0
    committer.max_wait = max_wait_ms / 1000
    stop = time.monotonic() + seconds
    latencies: list[float] = []
    lock = threading.Lock()

    def writer(number: int) -> None:
        own: list[float] = []
        n = number
        with app.app_context():
            while time.monotonic() < stop:
                started = time.perf_counter()
                committer.append([service.prepare(_draft(n))])
                own.append(time.perf_counter() - started)
                n += WRITERS
        with lock:
            latencies.extend(own)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    started, cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    latencies.sort()
    return {
        "writers": WRITERS,
        "max_wait_ms": max_wait_ms,
        "appends": committer.items,
        "appends_per_s": round(committer.items / elapsed),
        "batches": committer.batches,
        "mean_batch": round(committer.items / max(1, committer.batches), 1),
        "mean_batch_ms": round(elapsed * 1000 / max(1, committer.batches), 2),
        "cpu_us_per_append": round(cpu * 1e6 / max(1, committer.items), 1),
        "latency_ms": {
            "p50": round(latencies[len(latencies) // 2] * 1000, 2),
            "p99": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
            "mean": round(statistics.fmean(latencies) * 1000, 2),
        },
        "target_appends_per_s": 10_000,
    }


def _bulk_log(app: Flask, size: int) -> float:
    """Insert ``size`` chained entries in large INSERTs (the append path is measured above)."""
    started = time.perf_counter()
    engine = db.get_db(app).engine
    with engine.begin() as connection:
        head = connection.execute(text("SELECT max(seq) FROM audit_log")).scalar() or 0
        prev = GENESIS_HASH
        if head:
            prev = bytes(
                connection.execute(
                    text("SELECT hash FROM audit_log WHERE seq = :s"), {"s": head}
                ).scalar_one()
            )
        for first in range(head + 1, head + size + 1, 20_000):
            last = min(first + 20_000, head + size + 1)
            rows = service.seal(
                first - 1, prev, (service.prepare(_draft(seq)) for seq in range(first, last))
            )
            service.insert_rows(connection, rows)
            prev = rows[-1][-1]
    return time.perf_counter() - started


def proofs_and_verification(app: Flask, size: int) -> dict[str, Any]:
    build = _bulk_log(app, size)
    with app.app_context():
        session = db.get_db().session_factory()
        started, cpu = time.perf_counter(), time.process_time()
        checkpoint = signer.sign_now(session)  # integrates every entry into tiles first
        session.commit()
        integrate, integrate_cpu = time.perf_counter() - started, time.process_time() - cpu
        session.close()
        head = checkpoint.size
        proof_times, proof_cpu, consistency_times = [], [], []
        for n in range(50):
            seq = 1 + (n * 7919) % head
            # As GET /audit/events/<seq>/proof reads: a read-only snapshot transaction.
            with db.read_only_session() as reader:
                started, cpu = time.perf_counter(), time.process_time()
                store.inclusion_proof(reader, seq)
                proof_times.append(time.perf_counter() - started)
                proof_cpu.append(time.process_time() - cpu)
            old = 1 + (n * 104_729) % head
            with db.read_only_session() as reader:
                started = time.perf_counter()
                store.consistency_proof(reader, old, head)
                consistency_times.append(time.perf_counter() - started)
        tiles_read = len(tiles.tiles_for(tiles.proof_ranges_inclusion(head // 3, head)))
        started, cpu = time.perf_counter(), time.process_time()
        with db.read_only_session() as reader:
            outcome, _row = verification.verify_service_log(
                reader, store.in_short_sessions(db.read_only_session), full=True
            )
        verify_s, verify_cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "entries": head,
        "bulk_insert_s": round(build, 1),
        "integrate_tiles_s": round(integrate, 1),
        "integrate_tiles_cpu_s": round(integrate_cpu, 1),
        "inclusion_proof_ms": {
            "median": round(statistics.median(proof_times) * 1000, 2),
            "max": round(max(proof_times) * 1000, 2),
            "cpu_median": round(statistics.median(proof_cpu) * 1000, 2),
            "tile_rows": tiles_read,
            "target_ms": 10,
        },
        "consistency_proof_ms": {"median": round(statistics.median(consistency_times) * 1000, 2)},
        "verification": {
            "ok": outcome.result.ok,
            "seconds": round(verify_s, 2),
            "cpu_seconds": round(verify_cpu, 2),
            "entries_per_s": round(head / verify_s),
            "entries_per_cpu_s": round(head / max(verify_cpu, 1e-9)),
            "target_entries_per_s": 100_000,
        },
    }


def suite(url: str, folder: Path, entries: int, seconds: float) -> dict[str, Any]:
    with _app(url, folder, audit_checkpoint_seconds=10) as app:
        appends = group_commit_appends(app, seconds)
        # audit_batch_max_wait_ms=2: the leader waits up to 2 ms for the writers just
        # released to queue again, so a batch carries all 32 instead of half of them.
        waiting = group_commit_appends(app, seconds, max_wait_ms=2)
        if not entries:  # --appends-only: a quick iteration on the append path
            return {"group_commit": appends, "group_commit_wait_2ms": waiting}
        large = proofs_and_verification(app, entries)
    return {"group_commit": appends, "group_commit_wait_2ms": waiting, "million": large}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of the append run")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_DATABASE_URL")
        or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--appends-only",
        action="store_true",
        help="skip building the large log (proofs and verification): the append runs only",
    )
    args = parser.parse_args(argv)
    if args.appends_only:
        args.entries = 0
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="casework-logbench-") as scratch:
        folder = Path(scratch)
        url = f"sqlite:///{folder / 'log.db'}"
        results["sqlite"] = suite(url, folder / "sqlite", args.entries, args.seconds)
        results["load_average"] = [round(value, 2) for value in os.getloadavg()]
        print(json.dumps({"sqlite": results["sqlite"]}), flush=True)
        if not args.no_postgres:
            try:
                with _postgres(args.postgres) as pg_url:
                    results["postgresql"] = suite(pg_url, folder / "pg", args.entries, args.seconds)
            except Exception as error:  # a missing server is a skip, not a failure
                results["postgresql"] = {"status": "skipped", "reason": type(error).__name__}
            print(json.dumps({"postgresql": results["postgresql"]}), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
