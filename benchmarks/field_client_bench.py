"""The field client (``casework-sync``) against a real gunicorn on loopback.

Measures, on the embedded SQLite backend:

* **initial sync**: a new device pulls an office of N cases (default 10,000)
  from nothing, pages of 500, verifying the checkpoint at the end; seconds,
  cases per second and the client's peak memory (max RSS of the client
  process);
* **memory flat in the number of cases**: the same initial sync of a smaller
  office (default 2,000) in its own process, peak RSS beside the large one;
* **push**: 1,000 offline edits (each on its own case), then one sync that
  pushes them in requests of 100 and pulls the resulting changes back.

Targets from the issue: 10,000 cases in at most 15 s, memory flat in the
number of cases. Every value is synthetic. Besides wall time it reports the
client process's CPU seconds (``time.process_time()``, every thread) and the
time it was blocked on the server, and the load average around the large run.
Usage, from the repository root::

    python benchmarks/field_client_bench.py --out field_client.json
    python benchmarks/field_client_bench.py --profile client.prof   # cProfile of the pull
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

PASSPHRASE = "bench passphrase"
TARGET_INITIAL_S = 15.0


# -- inside the server's application (run through ``--in-app``) ---------------------------


def setup_office(office: str, count: int, username: str, password: str) -> dict[str, Any]:
    """Seed ``count`` cases in ``office`` and add a caseworker with MFA; return the seed."""
    import pyotp

    from casework import db
    from casework.auth import service as auth_service
    from casework.auth.mfa import seal_seed
    from casework.cases.seeding import seed_cases
    from casework.security.app import current_keyring
    from casework.timestamps import utcnow

    session = db.session()
    seed_cases(session, count=count, office=office)
    user = auth_service.create_user(
        session, username=username, password=password, role="caseworker", office_code=office
    )
    secret = pyotp.random_base32()
    user.mfa_kek_id, user.mfa_secret = seal_seed(current_keyring(), user.id, secret)
    user.mfa_enabled_at = utcnow()
    session.commit()
    from casework.sync import feed

    feed.backfill(session)  # cases written by the bulk path reach the feed through it
    return {"seed": secret}


def setup_admin(username: str, password: str) -> dict[str, Any]:
    import pyotp

    from casework import db
    from casework.auth import service as auth_service
    from casework.auth.mfa import seal_seed
    from casework.security.app import current_keyring
    from casework.timestamps import utcnow

    session = db.session()
    user = auth_service.create_user(
        session, username=username, password=password, role="admin", office_code=None
    )
    secret = pyotp.random_base32()
    user.mfa_kek_id, user.mfa_secret = seal_seed(current_keyring(), user.id, secret)
    user.mfa_enabled_at = utcnow()
    return {"seed": secret}


def _in_app(env: dict[str, str], function: str, **arguments: Any) -> Any:
    completed = subprocess.run(
        [sys.executable, __file__, "--in-app", function, json.dumps(arguments)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{function} failed: {completed.stderr[-1500:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _run_in_app(function: str, arguments: dict[str, Any]) -> None:
    from casework import create_app, db

    app = create_app()
    with app.app_context():
        result = globals()[function](**arguments)
        db.session().commit()
    print(json.dumps(result))


# -- the client, in a process of its own so its peak memory is its own ---------------------


def _client_run(home: str, edits: int, profile: str = "") -> None:
    from casework_sync import Client

    figures: dict[str, Any] = {}
    with Client(Path(home), PASSPHRASE, timeout=120) as client:
        waiting = _time_waits(client)
        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        cpu = time.process_time()
        started = time.perf_counter()
        report = client.sync()
        figures["initial_s"] = time.perf_counter() - started
        figures["initial_cpu_s"] = time.process_time() - cpu
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        figures["initial_server_wait_s"] = waiting.pop()
        figures["cases"] = client.replica.case_count()
        figures["pages"] = report.pages
        figures["checkpoint_ok"] = report.checkpoint_ok
        figures["initial_max_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if edits:
            references = [
                record["reference"]
                for record, _ in client.replica.iter_cases()
                if record.get("reference")
            ][:edits]
            started = time.perf_counter()
            for number, reference in enumerate(references):
                member = client.case(reference)["members"][0]["id"]
                client.edit_case(
                    reference,
                    {"members": {"change": [{"id": member, "phone": f"+1 555 {number:05d}"}]}},
                )
            figures["offline_edits_s"] = time.perf_counter() - started
            started = time.perf_counter()
            client.push()
            figures["push_s"] = time.perf_counter() - started
            figures["push_server_wait_s"] = waiting.pop()
            started = time.perf_counter()
            after = client.sync()
            figures["pull_back_s"] = time.perf_counter() - started
            figures["pushed"] = len(references)
            figures["pulled_back"] = after.pulled
            figures["push_checkpoint_ok"] = after.checkpoint_ok
            figures["max_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(figures))


def _time_waits(client: Any) -> Any:
    """Time the sync spent blocked on the server, so the client's own share can be told apart.

    The client counts it itself (``network_wait_s``: with pages fetched ahead, a
    fetch overlapping the storing of the previous page is not waiting); an older
    client is timed around its calls.
    """
    if hasattr(client, "network_wait_s"):

        class Counted:
            last = 0.0

            def pop(self) -> float:
                value: float = client.network_wait_s - self.last
                self.last = client.network_wait_s
                return value

        return Counted()
    waited = [0.0]
    call = client._call

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            waited[-1] += time.perf_counter() - started

    client._call = timed

    class Timed:
        def pop(self) -> float:
            value = waited[-1]
            waited[-1] = 0.0
            return value

    return Timed()


def _client(home: Path, edits: int, profile: str = "") -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, __file__, "--client", str(home), str(edits), profile],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"client run failed: {completed.stderr[-1500:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


# -- the run -----------------------------------------------------------------------------


def _totp(seed: str) -> str:
    import pyotp

    return str(pyotp.TOTP(seed).now())


def _login(url: str, username: str, password: str, seed: str) -> dict[str, str]:
    import httpx

    answer = httpx.post(
        url + "/api/v1/auth/login",
        json={"username": username, "password": password, "totp": _totp(seed)},
        timeout=60,
    )
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def _device(url: str, admin: dict[str, str], office: str, home: Path, user: dict[str, Any]) -> None:
    import httpx
    from casework_sync import Client, KdfCost

    answer = httpx.post(
        url + "/api/v1/devices/enrolment-codes",
        json={"office": office, "label": "bench laptop"},
        headers=admin,
        timeout=60,
    )
    answer.raise_for_status()
    client = Client.enrol(
        home, url, answer.json()["code"], PASSPHRASE, kdf_cost=KdfCost(log2_n=14), timeout=120
    )
    with client:
        client.login(user["username"], user["password"], _totp(user["seed"]))


def run(cases: int, small: int, edits: int, profile: str = "") -> dict[str, Any]:
    from benchmarks.gunicorn_server import GunicornConfig, GunicornServer

    with tempfile.TemporaryDirectory(prefix="casework-field-bench-") as scratch:
        root = Path(scratch)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
        env["CASEWORK_INSTANCE_PATH"] = str(root / "instance")
        env["CASEWORK_DATABASE_URL"] = f"sqlite:///{root / 'server.db'}"
        env["PYTHONPATH"] = str(REPO_ROOT)
        subprocess.run(
            [sys.executable, "-c", "from casework.cli import main; main(['init'])"],
            cwd=REPO_ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        offices: dict[str, dict[str, Any]] = {}
        started = time.perf_counter()
        for office, count in (("bench-field-l", cases), ("bench-field-s", small)):
            user = {"username": f"{office}-cw", "password": secrets.token_urlsafe(18)}
            user.update(_in_app(env, "setup_office", office=office, count=count, **user))
            offices[office] = user
        admin_password = secrets.token_urlsafe(18)
        admin_seed = _in_app(env, "setup_admin", username="bench-admin", password=admin_password)
        seeding_s = time.perf_counter() - started
        config = GunicornConfig(workers=2, threads=4, timeout_s=300)
        with GunicornServer(
            "wsgi:app", config, env=env, workdir=root / "gunicorn", ready_path="/readyz"
        ) as server:
            admin = _login(server.url, "bench-admin", admin_password, admin_seed["seed"])
            for office, user in offices.items():
                _device(server.url, admin, office, root / office, user)
            load_before = os.getloadavg()
            large = _client(root / "bench-field-l", edits, profile)
            load_after = os.getloadavg()
            small_run = _client(root / "bench-field-s", 0)
    rate = large["cases"] / large["initial_s"] if large["initial_s"] else 0.0
    return {
        "status": "ok",
        "backend": "sqlite",
        "seeding_s": round(seeding_s, 2),
        "load_average": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in load_after],
        },
        "initial_sync": {
            "cases": large["cases"],
            "seconds": round(large["initial_s"], 3),
            "cases_per_s": round(rate, 1),
            "pages": large["pages"],
            "server_wait_s": round(large["initial_server_wait_s"], 3),
            "client_s": round(large["initial_s"] - large["initial_server_wait_s"], 3),
            "client_cpu_s": round(large["initial_cpu_s"], 3),
            "checkpoint_ok": large["checkpoint_ok"],
            "max_rss_kib": large["initial_max_rss_kib"],
            "target_s": TARGET_INITIAL_S,
            "meets_target": large["initial_s"] <= TARGET_INITIAL_S,
        },
        "memory": {
            "small_cases": small_run["cases"],
            "small_max_rss_kib": small_run["initial_max_rss_kib"],
            "large_cases": large["cases"],
            "large_max_rss_kib": large["initial_max_rss_kib"],
            "ratio_large_to_small": round(
                large["initial_max_rss_kib"] / small_run["initial_max_rss_kib"], 3
            ),
        },
        "push": {
            "mutations": large.get("pushed", 0),
            "offline_edits_s": round(large.get("offline_edits_s", 0.0), 3),
            "push_s": round(large.get("push_s", 0.0), 3),
            "push_server_wait_s": round(large.get("push_server_wait_s", 0.0), 3),
            "mutations_per_s": round(large.get("pushed", 0) / large["push_s"], 1)
            if large.get("push_s")
            else None,
            "pull_back_s": round(large.get("pull_back_s", 0.0), 3),
            "pulled_back": large.get("pulled_back"),
            "checkpoint_ok": large.get("push_checkpoint_ok"),
            "max_rss_kib": large.get("max_rss_kib"),
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--in-app"]:
        _run_in_app(args[1], json.loads(args[2]))
        return 0
    if args[:1] == ["--client"]:
        _client_run(args[1], int(args[2]), args[3] if len(args) > 3 else "")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=2_000)
    parser.add_argument("--edits", type=int, default=1_000)
    parser.add_argument(
        "--profile", type=Path, help="write cProfile stats of the large initial sync here"
    )
    options = parser.parse_args(args)
    profile = str(options.profile.resolve()) if options.profile else ""
    figures = run(options.cases, options.small, options.edits, profile)
    text = json.dumps(figures, indent=2)
    if options.out:
        options.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
