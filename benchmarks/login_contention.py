"""How long a write waits while sign-ins run: in-process, through Flask's test client.

Usage::

    python -m benchmarks.login_contention [--login-threads 2] [--kind wrong|right]
                                          [--intakes 30] [--database-url URL]

The instance is prepared as for ``benchmarks.profile_read`` (200 cases, one
caseworker signed in). ``--login-threads`` threads then post logins without pause:
``wrong`` passwords for ever new usernames from ever new addresses (guesses that
never reach a lock-out), or the caseworker's ``right`` one. Meanwhile one thread
posts ``--intakes`` cases (``POST /api/v1/cases``) one after another; printed: the
intake's wall time (p50, p90, max) and the logins per second, as one JSON line.
Wall times on a shared machine are noisy: compare before/after in pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time

from benchmarks.profile_read import _environment, _prepare

LOGIN = "/api/v1/auth/login"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.login_contention")
    parser.add_argument("--login-threads", type=int, default=2)
    parser.add_argument("--kind", choices=("wrong", "right"), default="wrong")
    parser.add_argument("--intakes", type=int, default=30)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args(argv)
    with _environment(args.database_url or None):
        app, data = _prepare(200, backfill=False)
        headers, bodies = data["headers"], data["bodies"]
        stop = threading.Event()
        logins = [0] * args.login_threads

        def sign_in(thread: int) -> None:
            client = app.test_client()
            while not stop.is_set():
                n = logins[thread] = logins[thread] + 1
                body = {"username": "prof-caseworker", "password": data["password"]}
                address = "127.0.0.1"
                if args.kind == "wrong":
                    body = {"username": f"guess-{thread}-{n}", "password": "not-it-" + str(n)}
                    address = f"10.{thread}.{n // 250 % 250}.{n % 250 + 1}"
                answer = client.post(LOGIN, json=body, environ_base={"REMOTE_ADDR": address})
                assert answer.status_code in (200, 401), answer.status_code

        client = app.test_client()
        for body in bodies[:5]:  # warm-up
            client.post("/api/v1/cases", json=body, headers=headers)
        threads = [threading.Thread(target=sign_in, args=(t,)) for t in range(args.login_threads)]
        for thread in threads:
            thread.start()
        time.sleep(1.0 if threads else 0.0)  # let the sign-ins get going
        before = sum(logins)
        waits: list[float] = []
        started = time.perf_counter()
        for i in range(args.intakes):
            sent = time.perf_counter()
            answer = client.post("/api/v1/cases", json=bodies[i % len(bodies)], headers=headers)
            waits.append((time.perf_counter() - sent) * 1000)
            assert answer.status_code == 201, answer.status_code
        elapsed = time.perf_counter() - started
        signed = sum(logins) - before
        stop.set()
        for thread in threads:
            thread.join()
    waits.sort()
    summary = {
        "backend": "postgresql" if args.database_url else "sqlite",
        "login_threads": args.login_threads,
        "kind": args.kind,
        "intakes": args.intakes,
        "intake_ms_p50": round(statistics.median(waits), 1),
        "intake_ms_p90": round(waits[max(0, int(len(waits) * 0.9) - 1)], 1),
        "intake_ms_max": round(waits[-1], 1),
        "logins_per_s": round(signed / elapsed, 1),
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
