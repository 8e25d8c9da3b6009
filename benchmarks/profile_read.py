"""Profile the hot paths in-process: many requests through Flask's test client under cProfile.

Usage::

    python -m benchmarks.profile_read [--cases 2000] [--requests 500] [--path read|list|...]
                                       [--database-url URL] [--top 40] [--sort cumulative]
                                       [--no-profile] [--statements] [--no-backfill]
                                       [--gc-young-threshold N] [--cpu-timer]

A temporary instance folder (and, for PostgreSQL, a throw-away database on
the server of ``--database-url``) holds synthetic cases seeded through the
bulk path, then published to the sync feed as after any bulk import (``--no-backfill``:
not); one caseworker logs in once for a bearer token. Then the chosen
request is repeated ``--requests`` times under cProfile, and the functions
that dominate are printed with the mean time per request (wall and CPU:
``time.process_time``, which a loaded machine inflates less), then one JSON
line with the figures (statements per request included). Inherited
``CASEWORK_*`` variables are dropped, as in ``make bench``. ``--gc-young-threshold N``
tunes the garbage collector once the app is built, with the function a serving worker
uses (``casework.config.tune_gc``; 0, the default here, leaves CPython's defaults).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

PATHS = ("read", "list", "filter", "search", "intake", "login", "healthz")


@contextmanager
def _environment(database_url: str | None) -> Iterator[str]:
    """A temporary instance folder (and PostgreSQL database); yields the instance path."""
    from benchmarks import databases

    for name in [n for n in os.environ if n.startswith("CASEWORK_")]:
        del os.environ[name]
    folder = tempfile.mkdtemp(prefix="casework-profile-")
    os.environ["CASEWORK_INSTANCE_PATH"] = folder
    try:
        if database_url:
            with databases.throwaway_postgres(database_url) as database:
                os.environ["CASEWORK_DATABASE_URL"] = database.url
                yield folder
        else:
            yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _prepare(cases: int, backfill: bool = True) -> tuple[Any, dict[str, Any]]:
    from benchmarks.case_setup import exempt_from_mfa
    from casework import create_app, db, migrate
    from casework.auth import service as auth_service
    from casework.cases.seeding import seed_cases, synthetic_households

    app = create_app()
    with app.app_context():
        migrate.upgrade(db.get_db().engine)
        for step in app.extensions.get("casework.init_steps", []):
            step()
        started = time.perf_counter()
        references = seed_cases(db.session(), count=cases, office="prof-01")
        seeded_in = time.perf_counter() - started
        if backfill:  # as after any bulk import: the feed's snapshot of every case
            from casework.sync import feed

            feed.backfill(db.session())
            db.session().commit()
        exempt_from_mfa(db.session(), "prof-01")  # the caseworker signs in by password
        password = secrets.token_urlsafe(24)
        auth_service.create_user(
            db.session(),
            username="prof-caseworker",
            password=password,
            role="caseworker",
            office_code="prof-01",
        )
        db.session().commit()
        db.session().close()
    print(f"seeded {cases} cases in {seeded_in:.1f} s ({cases / seeded_in:.0f}/s)")
    client = app.test_client()
    answer = client.post(
        "/api/v1/auth/login", json={"username": "prof-caseworker", "password": password}
    )
    token = answer.get_json()["token"]
    bodies = [
        {"office": "prof-01", **h}
        for h in synthetic_households(200, seed=2)
        if len(h["members"]) == 3
    ]
    from benchmarks import synthetic

    return app, {
        "references": references[:1000],
        "headers": {"Authorization": f"Bearer {token}"},
        "password": password,
        "bodies": bodies,
        "searches": synthetic.document_searches(min(cases, 1000)),
    }


def _request(app: Any, data: dict[str, Any], path: str) -> Callable[[int], int]:
    client = app.test_client()
    headers = data["headers"]
    refs, bodies, searches = data["references"], data["bodies"], data["searches"]

    def read(i: int) -> int:
        return client.get(f"/api/v1/cases/{refs[i % len(refs)]}", headers=headers).status_code

    def listing(i: int) -> int:
        return client.get("/api/v1/cases?limit=50", headers=headers).status_code

    def filtered(i: int) -> int:
        url = "/api/v1/cases?specific_need=SC-UC&limit=50"
        return client.get(url, headers=headers).status_code

    def search(i: int) -> int:
        body = searches[i % len(searches)]
        return client.post("/api/v1/cases/search", json=body, headers=headers).status_code

    def intake(i: int) -> int:
        body = bodies[i % len(bodies)]
        return client.post("/api/v1/cases", json=body, headers=headers).status_code

    def login(i: int) -> int:
        body = {"username": "prof-caseworker", "password": data["password"]}
        return client.post("/api/v1/auth/login", json=body).status_code

    def healthz(i: int) -> int:
        return client.get("/healthz").status_code

    return {
        "read": read,
        "list": listing,
        "filter": filtered,
        "search": search,
        "intake": intake,
        "login": login,
        "healthz": healthz,
    }[path]


def _count_statements(app: Any) -> tuple[list[int], dict[str, int]]:
    """Count every SQL statement the engine runs from now on (BEGIN and COMMIT included)."""
    from sqlalchemy import event

    from casework import db

    total = [0]
    by_text: dict[str, int] = {}
    with app.app_context():
        engine = db.get_db().engine

    @event.listens_for(engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        total[0] += 1
        key = " ".join(statement.split())
        by_text[key] = by_text.get(key, 0) + 1

    @event.listens_for(engine, "commit")
    def _commit(_conn: Any) -> None:
        total[0] += 1
        by_text["COMMIT"] = by_text.get("COMMIT", 0) + 1

    return total, by_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_read")
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--path", choices=PATHS, default="read")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--no-profile", action="store_true", help="time only")
    parser.add_argument("--statements", action="store_true", help="list the SQL statements run")
    parser.add_argument(
        "--no-backfill",
        action="store_true",
        help="leave the seeded cases out of the sync feed (no sealed snapshots)",
    )
    parser.add_argument("--save", default="", help="write the raw profile here (pstats)")
    parser.add_argument(
        "--cpu-timer",
        action="store_true",
        help="profile CPU time (time.process_time) instead of wall time: waits drop out",
    )
    parser.add_argument(
        "--gc-young-threshold", type=int, default=0, help="as a worker does (0: CPython's)"
    )
    args = parser.parse_args(argv)
    with _environment(args.database_url or None):
        app, data = _prepare(args.cases, not args.no_backfill)
        call = _request(app, data, args.path)
        from casework.config import tune_gc

        tune_gc(args.gc_young_threshold)
        for i in range(min(50, args.requests)):  # warm-up
            status = call(i)
        if status >= 400:
            print(f"{args.path} answered {status}", file=sys.stderr)
            return 1
        statements = _count_statements(app)
        profiler = cProfile.Profile(time.process_time) if args.cpu_timer else cProfile.Profile()
        started, cpu_started = time.perf_counter(), time.process_time()
        if not args.no_profile:
            profiler.enable()
        for i in range(args.requests):
            call(i)
        if not args.no_profile:
            profiler.disable()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        summary = {
            "path": args.path,
            "backend": "postgresql" if args.database_url else "sqlite",
            "requests": args.requests,
            "wall_ms_per_request": round(elapsed / args.requests * 1000, 3),
            "cpu_ms_per_request": round(cpu / args.requests * 1000, 3),
            "statements_per_request": round(statements[0][0] / args.requests, 2),
            "profiled": not args.no_profile,
            "gc_young_threshold": args.gc_young_threshold,
            "load_average": os.getloadavg()[0],
        }
        print(
            f"{args.path}: {args.requests} requests in {elapsed:.2f} s, "
            f"{elapsed / args.requests * 1000:.2f} ms each ({cpu / args.requests * 1000:.2f} ms "
            f"CPU), {statements[0][0] / args.requests:.1f} SQL statements each"
            + ("" if args.no_profile else " (under cProfile)")
        )
        print(json.dumps(summary))
        if args.statements:
            for text, count in sorted(statements[1].items(), key=lambda item: -item[1]):
                print(f"{count / args.requests:6.2f}  {text[:150]}")
        if args.save and not args.no_profile:
            profiler.dump_stats(args.save)
        if not args.no_profile:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.strip_dirs().sort_stats(args.sort).print_stats(args.top)
            print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
