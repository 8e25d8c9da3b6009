"""Throughput of the access log: appends under contention, checkpoints, verification.

Measures, in one run:

* **appends per second** through ``audit.record``, each append its own
  committed transaction, from N threads at once (default 8 x 250) on a real
  SQLite file with casework's production pragmas (WAL, ``synchronous=FULL``,
  ``BEGIN IMMEDIATE``) and, when reachable, on PostgreSQL (a scratch database
  created and dropped here; advisory lock). One thread alone for reference.
  Per-append latency percentiles come with each figure;
* **the cost of checkpointing at append time**: one thread, checkpoints every
  1,000 entries against checkpoints switched off;
* **signing a checkpoint**: from the stored frontier (reads the 1,000 entries
  since the last one) against rebuilding the root from every stored hash;
* **verification** of a 100,000-entry log with 100 checkpoints, in entries per
  second: in memory, from the database, and from an export file with only the
  public key (the auditor's path); plus writing the export and one inclusion
  proof over the whole log.

Wall-clock times (``perf_counter``); the machine's other load counts, so run
it on a quiet machine and compare runs on the same one.

Usage, from the repository root::

    python benchmarks/audit_bench.py --out audit_bench.json
    python benchmarks/audit_bench.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres

The PostgreSQL URL (default: ``BENCH_DATABASE_URL``, the server ``make bench``
uses, else ``CASEWORK_BENCH_POSTGRES``, else the local server as
``postgres``) must allow CREATE DATABASE; ``--no-postgres`` skips it.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask import Flask
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from casework import audit, create_app, migrate
from casework.audit import signer, store
from casework.audit.encoding import GENESIS_HASH, AuditRecord, ChainedRecord, chain
from casework.audit.merkle import root
from casework.audit.models import AuditEntry
from casework.audit.proofs import inclusion_path
from casework.audit.verify import verify_export_file, verify_log
from casework.db import get_db, make_engine
from casework.security.app import current_keyring, ensure_keyring

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CHECKPOINT_EVERY = 1000


# --- Databases. ---


@contextmanager
def sqlite_app(folder: Path, **settings: Any) -> Iterator[Flask]:
    """An application on a fresh SQLite file, migrated, with its own keyring."""
    app = create_app(
        {"database_url": f"sqlite:///{folder / f'{uuid.uuid4().hex}.db'}",
         "instance_path": str(folder), "log_level": "WARNING", **settings}
    )  # fmt: skip
    ensure_keyring(app)
    migrate.upgrade(get_db(app).engine)
    try:
        yield app
    finally:
        get_db(app).engine.dispose()


@contextmanager
def postgres_app(admin_url: str, folder: Path, **settings: Any) -> Iterator[Flask]:
    """An application on a scratch PostgreSQL database, dropped afterwards."""
    name = f"casework_bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(admin_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    app = create_app(
        {"database_url": url, "instance_path": str(folder), "log_level": "WARNING", **settings}
    )
    try:
        ensure_keyring(app)
        migrate.upgrade(get_db(app).engine)
        yield app
    finally:
        get_db(app).engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def postgres_reachable(admin_url: str) -> str | None:
    """None when the server answers and may create databases; otherwise why not."""
    try:
        engine = make_engine(admin_url)
        with engine.connect() as connection:
            allowed = connection.execute(
                text("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
            ).scalar()
        engine.dispose()
    except SQLAlchemyError as error:
        return f"unreachable ({type(error).__name__})"
    return None if allowed else "the role may not create databases"


# --- Appends. ---


def appends(app: Flask, threads: int, per_thread: int) -> dict[str, Any]:
    """``threads`` threads each append ``per_thread`` entries, one transaction each."""
    factory = get_db(app).session_factory
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start_line = threading.Barrier(threads + 1)

    def work(worker: int) -> None:
        mine: list[float] = []
        try:
            with app.app_context():
                start_line.wait()
                for n in range(per_thread):
                    began = time.perf_counter()
                    with factory() as session:
                        audit.record(
                            audit.AuditAction.CASE_READ,
                            target=f"REF{worker:02d}{n:06d}",
                            fields=["family_name", "given_name"],
                            actor=audit.Actor(f"u-{worker}", "caseworker", "kbl"),
                            session=session,
                        )
                        session.commit()
                    mine.append(time.perf_counter() - began)
        except Exception as error:  # counted and reported, never hidden
            errors.append(type(error).__name__)
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for thread in pool:
        thread.start()
    start_line.wait()
    began = time.perf_counter()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - began
    return {
        "threads": threads,
        "appends": len(latencies),
        "errors": len(errors),
        "seconds": round(elapsed, 3),
        "appends_per_s": round(len(latencies) / elapsed, 1),
        **latency_summary(latencies),
    }


def latency_summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50_ms": at(0.50), "p99_ms": at(0.99), "max_ms": round(ordered[-1] * 1000, 2)}


def append_suite(
    make_app: Callable[..., Any], threads: int, per_thread: int, repeat: int
) -> dict[str, Any]:
    """Each configuration ``repeat`` times on a fresh database; the median run is kept."""
    configurations = {
        "contended": (threads, per_thread, {"audit_checkpoint_every": CHECKPOINT_EVERY}),
        "one_thread": (1, threads * per_thread // 2, {"audit_checkpoint_every": CHECKPOINT_EVERY}),
        "one_thread_no_checkpoints": (
            1,
            threads * per_thread // 2,
            {"audit_checkpoint_every": 0, "audit_checkpoint_minutes": 0},
        ),
    }
    results: dict[str, Any] = {}
    for name, (count, each, settings) in configurations.items():
        runs = []
        for _ in range(repeat):
            with make_app(**settings) as app:
                runs.append(appends(app, count, each))
        runs.sort(key=lambda run: run["appends_per_s"])
        results[name] = {
            **runs[len(runs) // 2],
            "runs_appends_per_s": [r["appends_per_s"] for r in runs],
        }
    return results


# --- A large log, and verifying it. ---


def synthetic_log(size: int) -> list[ChainedRecord]:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    actions = ("case.read", "case.update", "case.search", "authz.denied")
    log: list[ChainedRecord] = []
    prev = GENESIS_HASH
    for seq in range(1, size + 1):
        record = AuditRecord(
            seq=seq,
            at=t0 + timedelta(milliseconds=37 * seq),
            actor=f"u-{seq % 97}",
            role="caseworker",
            office=f"o{seq % 9}",
            device=None,
            action=actions[seq % 4],
            target=f"REF{seq % 5003:08d}",
            fields=("date_of_birth", "family_name", "given_name")[: seq % 4],
            outcome="denied" if seq % 4 == 3 else "success",
            request_id=uuid.UUID(int=seq).hex,
        )
        entry = chain(prev, record)
        log.append(entry)
        prev = entry.hash
    return log


def timed(action: Callable[[], Any]) -> tuple[Any, float]:
    began = time.perf_counter()
    value = action()
    return value, time.perf_counter() - began


def rate(count: int, seconds: float) -> dict[str, float]:
    return {"seconds": round(seconds, 3), "entries_per_s": round(count / seconds)}


def verification_suite(folder: Path, size: int) -> dict[str, Any]:
    """Store ``size`` entries with a checkpoint every 1,000, then verify them every way."""
    log = synthetic_log(size)
    results: dict[str, Any] = {"entries": size}
    with sqlite_app(folder, audit_checkpoint_every=CHECKPOINT_EVERY) as app:
        engine = get_db(app).engine
        factory = get_db(app).session_factory
        sign_times: list[float] = []
        with app.app_context():
            for low in range(0, size, CHECKPOINT_EVERY):
                chunk = log[low : low + CHECKPOINT_EVERY]
                with engine.begin() as connection:
                    connection.execute(insert(AuditEntry), [AuditEntry.values_of(e) for e in chunk])
                with factory() as session:
                    _, seconds = timed(functools.partial(signer.sign_now, session))
                    session.commit()
                sign_times.append(seconds)
            identity = signer.log_identity()
            public = current_keyring().verify_key
        results["checkpoints"] = len(sign_times)
        results["sign_checkpoint_from_frontier_ms"] = round(statistics.median(sign_times) * 1000, 2)
        with factory() as session:
            state = store.log_state(session)
        read = store.in_short_sessions(factory)
        _, seconds = timed(lambda: root(store.iter_entry_hashes(read, size)))
        results["root_from_every_stored_hash_ms"] = round(seconds * 1000, 1)

        notes = [note for _, note in state.notes]
        verdict, seconds = timed(
            lambda: verify_log(log, notes, identity.public_key, identity.key_name, identity.origin)
        )
        assert verdict.ok, verdict.reason
        results["verify_in_memory"] = rate(size, seconds)

        verdict, seconds = timed(lambda: store.verify_stored(state, read, identity))
        assert verdict.ok, verdict.reason
        results["verify_from_database"] = rate(size, seconds)

        export = folder / "export.jsonl"

        def write() -> None:
            with export.open("w", encoding="ascii") as handle:
                for line in store.export_lines(read, state.size, state.notes):
                    handle.write(line)

        _, seconds = timed(write)
        results["export_to_file"] = rate(size, seconds)
        results["export_bytes"] = export.stat().st_size

        verdict, seconds = timed(
            lambda: verify_export_file(export, public, identity.key_name, identity.origin)
        )
        assert verdict.ok, verdict.reason
        results["verify_export_file"] = rate(size, seconds)

        _, seconds = timed(
            lambda: inclusion_path(store.iter_entry_hashes(read, size), size // 3, size)
        )
        results["inclusion_proof_ms"] = round(seconds * 1000, 1)
    return results


# --- Report. ---


def table(results: dict[str, Any]) -> str:
    header = ("appends (each committed)", "appends/s", "p50 ms", "p99 ms", "errors")
    lines = ["{:44} {:>10} {:>8} {:>8} {:>7}".format(*header)]
    for backend in ("sqlite", "postgresql"):
        suite = results["appends"].get(backend)
        if not isinstance(suite, dict):
            lines.append(f"{backend:44} skipped: {suite}")
            continue
        for name, row in suite.items():
            label = f"{backend} {name.replace('_', ' ')} ({row['threads']} thr)"
            lines.append(
                f"{label:44} {row['appends_per_s']:>10} {row['p50_ms']:>8} "
                f"{row['p99_ms']:>8} {row['errors']:>7}"
            )
    v = results["verification"]
    lines += ["", f"{v['entries']:,} entries, {v['checkpoints']} checkpoints{'entries/s':>25}"]
    for name in (
        "verify_in_memory",
        "verify_from_database",
        "verify_export_file",
        "export_to_file",
    ):
        lines.append(f"  {name.replace('_', ' '):40} {v[name]['entries_per_s']:>12,}")
    timings = {
        "sign a checkpoint from the frontier (1,000 new)": v["sign_checkpoint_from_frontier_ms"],
        f"root from every stored hash ({v['entries']:,})": v["root_from_every_stored_hash_ms"],
        "one inclusion proof over the whole log": v["inclusion_proof_ms"],
    }
    lines += [f"  {label:50} {ms:>8} ms" for label, ms in timings.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--appends", type=int, default=250, help="appends per thread")
    parser.add_argument("--entries", type=int, default=100_000, help="log size to verify")
    parser.add_argument("--repeat", type=int, default=3, help="runs per append figure")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_DATABASE_URL")
        or os.environ.get("CASEWORK_BENCH_POSTGRES", DEFAULT_POSTGRES),
    )
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
        "appends": {},
    }
    with tempfile.TemporaryDirectory(prefix="casework-audit-bench-") as tmp:
        folder = Path(tmp)
        results["appends"]["sqlite"] = append_suite(
            lambda **s: sqlite_app(folder, **s), args.threads, args.appends, args.repeat
        )
        reason = "--no-postgres" if args.no_postgres else postgres_reachable(args.postgres)
        if reason is None:
            results["appends"]["postgresql"] = append_suite(
                lambda **s: postgres_app(args.postgres, folder, **s),
                args.threads,
                args.appends,
                args.repeat,
            )
        else:
            results["appends"]["postgresql"] = reason
        results["verification"] = verification_suite(folder, args.entries)
    print(table(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
