"""Durability of the access log under load and worker kills (``make durability``).

Runs a real gunicorn (2 workers x 8 threads) on a throw-away database, drives
``--clients`` clients for ``--seconds`` with a mix of case reads, searches and
intakes, and ``kill -9``s one worker ``--kills`` times during the run. Then:

* every request answered 2xx has at least one entry in the log carrying the
  request id the server returned in ``X-Request-ID``;
* the log verifies in full (what ``casework audit verify`` runs);
* no entry is duplicated (two entries alike in everything but seq and hashes).

Exit status 0 when all three hold. ``tests/audit/test_durability.py`` runs a
short version of this in the ordinary test suite.

    python -m benchmarks.durability --backend sqlite --clients 32 --seconds 60 --kills 2
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import random
import secrets
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import case_setup, synthetic
from benchmarks.context import BenchContext
from benchmarks.databases import BenchDatabase, embedded_sqlite, throwaway_postgres
from benchmarks.gunicorn_server import GunicornConfig, GunicornServer
from benchmarks.http_suite import _initialise, service_environment
from benchmarks.settings import from_environ

OFFICE = "durable-01"
USERNAME = "durable-caseworker"


@dataclass
class Tally:
    """What the clients saw: the server's request id of every 2xx, and the failures."""

    ok_ids: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    connection_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def logged(request_ids: list[str]) -> dict[str, Any]:
    """In the app: which of ``request_ids`` have no entry, and how many entries are duplicated."""
    from sqlalchemy import func, select

    from casework import db
    from casework.audit import store, verification
    from casework.audit.models import AuditEntry

    session = db.session()
    present: set[str] = set()
    wanted = list(set(request_ids))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        present.update(
            session.scalars(
                select(AuditEntry.request_id).where(AuditEntry.request_id.in_(chunk)).distinct()
            )
        )
    key = (
        AuditEntry.request_id,
        AuditEntry.action,
        AuditEntry.target,
        AuditEntry.fields,
        AuditEntry.outcome,
        AuditEntry.at_us,
    )
    duplicated = session.execute(
        select(func.count()).select_from(
            select(*key).group_by(*key).having(func.count() > 1).subquery()
        )
    ).scalar_one()
    total = session.scalar(select(func.count()).select_from(AuditEntry))
    with db.read_only_session() as reader:  # what `casework audit verify` runs
        outcome, _row = verification.verify_service_log(
            reader, store.in_short_sessions(db.read_only_session), full=True
        )
    return {
        "verification": dataclasses.asdict(outcome.result),
        "missing": sorted(set(wanted) - present)[:20],
        "missing_count": len(set(wanted) - present),
        "duplicated": duplicated,
        "entries": total,
    }


def _client(
    port: int,
    token: str,
    references: list[str],
    intakes: list[dict[str, Any]],
    searches: list[dict[str, Any]],
    deadline: float,
    tally: Tally,
    seed: int,
) -> None:
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connection: http.client.HTTPConnection | None = None
    while time.monotonic() < deadline:
        roll = rng.random()
        if roll < 0.6:
            method, path, body = "GET", f"/api/v1/cases/{rng.choice(references)}", None
        elif roll < 0.85:
            method, path, body = "POST", "/api/v1/cases/search", rng.choice(searches)
        else:
            method, path, body = "POST", "/api/v1/cases", rng.choice(intakes)
        payload = None if body is None else json.dumps(body).encode()
        try:
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            if connection is not None:
                connection.close()
            connection = None
            with tally.lock:
                tally.connection_errors += 1
            continue
        request_id = response.getheader("X-Request-ID") or ""
        with tally.lock:
            tally.statuses[response.status] += 1
            if 200 <= response.status < 300:
                tally.ok_ids.append(request_id)
        if response.getheader("Connection", "").lower() == "close":
            connection.close()
            connection = None
    if connection is not None:
        connection.close()


def _workers(master_pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text()
    except OSError:
        return []
    return [int(pid) for pid in text.split()]


def _provision(backend: str) -> AbstractContextManager[BenchDatabase]:
    if backend == "sqlite":
        return embedded_sqlite()
    return throwaway_postgres(from_environ(os.environ).postgres_url)


def run(backend: str, clients: int, seconds: float, kills: int, cases: int = 300) -> dict[str, Any]:
    """One durability run; returns the findings (``ok`` says whether every check held)."""
    with _provision(backend) as database, tempfile.TemporaryDirectory(prefix="cw-dur-") as tmp:
        root = Path(tmp)
        env = service_environment(root / "instance", database)
        _initialise(env)
        server = GunicornServer(
            "wsgi:app",
            GunicornConfig(workers=2, threads=8, timeout_s=30),
            env=env,
            workdir=root / "service",
            ready_path="/readyz",
        )
        with server:
            settings = from_environ(os.environ)
            context = BenchContext(settings, database, root / "instance", env, server.port)
            password = secrets.token_urlsafe(18)
            seeded = context.call_in_app(
                "benchmarks.case_setup:seed_office",
                count=cases,
                office=OFFICE,
                username=USERNAME,
                password=password,
            )
            token = case_setup.login(context, USERNAME, password)
            searches = synthetic.document_searches(200)
            tally = Tally()
            deadline = time.monotonic() + seconds
            threads = [
                threading.Thread(
                    target=_client,
                    args=(
                        server.port,
                        token,
                        seeded["references"],
                        seeded["intake_bodies"],
                        searches,
                        deadline,
                        tally,
                        n,
                    ),
                    daemon=True,
                )
                for n in range(clients)
            ]
            for thread in threads:
                thread.start()
            killed = []
            start = deadline - seconds
            for number in range(kills):
                at = start + seconds * (number + 1) / (kills + 1)
                time.sleep(max(0.0, at - time.monotonic()))
                workers = _workers(server.master_pid)
                if workers:
                    victim = random.choice(workers)
                    os.kill(victim, signal.SIGKILL)
                    killed.append(victim)
            for thread in threads:
                thread.join(seconds + 120)
        findings = context.call_in_app("benchmarks.durability:logged", request_ids=tally.ok_ids)
    ok = (
        bool(tally.ok_ids)
        and findings["missing_count"] == 0
        and findings["duplicated"] == 0
        and findings["verification"]["ok"]
        and len(killed) == kills
    )
    return {
        "ok": ok,
        "backend": backend,
        "clients": clients,
        "seconds": seconds,
        "killed_workers": len(killed),
        "answered_2xx": len(tally.ok_ids),
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "connection_errors": tally.connection_errors,
        **findings,
    }


def _backends(choice: str) -> Iterator[str]:
    yield from (["sqlite", "postgresql"] if choice == "both" else [choice])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--kills", type=int, default=2)
    args = parser.parse_args(argv)
    status = 0
    for backend in _backends(args.backend):
        result = run(backend, args.clients, args.seconds, args.kills)
        print(json.dumps(result), flush=True)
        status |= 0 if result["ok"] else 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
