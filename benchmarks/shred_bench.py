"""How long ``casework keys shred`` takes for N case keys, on SQLite and PostgreSQL.

The shred step reads and writes only ``case_keys`` (and the few MFA seeds), so
the keys are inserted directly, wrapped under the active KEK as intake would
(no cases, members or blind indexes are needed to time it). Then one erasure
mark is added and the command runs in a subprocess, as a timer would run it
(its 2 s wait for running workers to load the new keyring is included). Reported
per backend: the wall time, the CPU seconds of the command's process (the
database server's own work is not in them; on a machine shared with other work
the wall clock includes other work's time, the CPU seconds do not), keys per
second, and a check that every key is under the new KEK and opens with the
keyring as it is on disk.

Usage, from the repository root (``make bench`` runs the small default)::

    python benchmarks/shred_bench.py --out shred.json                 # 20,000 keys
    python benchmarks/shred_bench.py --million --out shred.json       # 1,000,000 keys
    python benchmarks/shred_bench.py --keys 200000 --no-postgres

The PostgreSQL server (``--postgres``, default ``BENCH_DATABASE_URL`` or the local
one) must allow CREATE DATABASE: the run uses a scratch database and drops it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask import Flask
from sqlalchemy import func, insert, select

from benchmarks.audit_bench import DEFAULT_POSTGRES, postgres_app, postgres_reachable, sqlite_app
from casework.db import get_db
from casework.keys.rotation import DEFAULT_BATCH_SIZE
from casework.security.app import holder
from casework.security.envelope import WrappedKey, new_data_key, unwrap_data_key, wrap_data_key
from casework.security.keyring import utc_now
from casework.security.models import CaseKey, ShredMark

DEFAULT_KEYS = 20_000
INSERT_CHUNK = 10_000
SAMPLE = 1_000


def load_keys(app: Flask, count: int) -> tuple[float, dict[uuid.UUID, bytes]]:
    """Insert ``count`` wrapped keys and one erasure mark; return the seconds and a sample
    of data keys to check afterwards."""
    keyring = holder(app).get()
    kek = keyring.active_kek().kek_id
    sample: dict[uuid.UUID, bytes] = {}
    every = max(count // SAMPLE, 1)
    started = time.perf_counter()
    now = utc_now()
    with get_db(app).engine.begin() as connection:
        for start in range(0, count, INSERT_CHUNK):
            rows = []
            for n in range(start, min(start + INSERT_CHUNK, count)):
                case_id, data_key = uuid.uuid4(), new_data_key()
                if n % every == 0:
                    sample[case_id] = data_key
                blob = wrap_data_key(keyring, data_key, case_id).blob
                row = {"case_id": case_id, "kek_id": kek, "wrapped_key": blob, "created_at": now}
                rows.append(row)
            connection.execute(insert(CaseKey.__table__), rows)
        connection.execute(insert(ShredMark.__table__), [{"kek_id": kek, "marked_at": now}])
    return time.perf_counter() - started, sample


def shred(app: Flask, batch_size: int) -> tuple[float, float, str]:
    """Run ``casework keys shred`` as a timer would; return wall s, its CPU s, last line."""
    environ = {
        **{k: v for k, v in os.environ.items() if k != "CASEWORK_KEYRING"},  # the run's own
        "CASEWORK_DATABASE_URL": str(get_db(app).engine.url.render_as_string(hide_password=False)),
        "CASEWORK_INSTANCE_PATH": app.instance_path,
        "CASEWORK_LOG_LEVEL": "WARNING",
    }
    command = [str(Path(sys.executable).parent / "casework"), "keys", "shred"]
    command += ["--batch-size", str(batch_size)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=environ, capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"casework keys shred failed: {done.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return took, cpu, done.stdout.strip().splitlines()[-1]


def check(app: Flask, sample: dict[uuid.UUID, bytes]) -> dict[str, Any]:
    """Every key under the one KEK left, and the sampled data keys open unchanged with the
    keyring as it is on disk (the command saved it)."""
    keyring = holder(app).provider.load()
    active = keyring.active_kek().kek_id
    with get_db(app).engine.connect() as connection:
        by_kek = dict(
            connection.execute(select(CaseKey.kek_id, func.count()).group_by(CaseKey.kek_id)).all()
        )
        keys = CaseKey.__table__.c
        chosen = random.Random(7).sample(sorted(sample), min(len(sample), 200))
        rows = connection.execute(
            select(keys.case_id, keys.kek_id, keys.wrapped_key).where(keys.case_id.in_(chosen))
        ).all()
    opened = all(
        unwrap_data_key(keyring, WrappedKey(kek_id, bytes(blob)), case_id) == sample[case_id]
        for case_id, kek_id, blob in rows
    )
    return {
        "all_under_new_kek": set(by_kek) == {active},
        "sample_opens": opened and len(rows) == len(chosen),
        "keks_in_keyring": len(keyring.keks),
    }


def measure(
    make_app: Callable[[], AbstractContextManager[Flask]], keys: int, batch: int
) -> dict[str, Any]:
    with make_app() as app:
        loaded, sample = load_keys(app, keys)
        load_before = os.getloadavg()
        took, cpu, last = shred(app, batch)
        verdict = check(app, sample)
        rate = keys / took
        return {
            "keys": keys,
            "batch_size": batch,
            "insert_s": round(loaded, 1),
            "shred_s": round(took, 2),
            "shred_cpu_s": round(cpu, 2),
            "keys_per_s": round(rate),
            "keys_per_cpu_s": round(keys / cpu) if cpu else None,
            "one_million_min": round(1_000_000 / rate / 60, 2),
            "load_average": [round(x, 2) for x in load_before],
            "last_line": last,
            **verdict,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--keys", type=int, default=DEFAULT_KEYS)
    parser.add_argument("--million", action="store_true", help="1,000,000 keys (slow)")
    parser.add_argument("--batch-size", type=int, default=None, help="the command's default")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_DATABASE_URL")
        or os.environ.get("CASEWORK_BENCH_POSTGRES", DEFAULT_POSTGRES),
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args(argv)
    keys = 1_000_000 if args.million else args.keys
    batch = args.batch_size or DEFAULT_BATCH_SIZE
    results: dict[str, Any] = {"cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="casework-shred-") as tmp:
        folder = Path(tmp)

        def fresh_folder() -> Path:
            path = folder / uuid.uuid4().hex[:8]
            path.mkdir()
            return path

        if not args.no_sqlite:
            results["sqlite"] = measure(lambda: sqlite_app(fresh_folder()), keys, batch)
        reason = "--no-postgres" if args.no_postgres else postgres_reachable(args.postgres)
        if reason is None:
            results["postgresql"] = measure(
                lambda: postgres_app(args.postgres, fresh_folder()), keys, batch
            )
        else:
            results["postgresql"] = {"skipped": reason}
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    ok = all(
        r.get("all_under_new_kek") and r.get("sample_opens")
        for r in results.values()
        if isinstance(r, dict) and "keys" in r
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
