"""Field-office sync: pull (cases/s, pages of 500) and push (mutations/s, requests of 100).

In-process, one thread, through the Flask test client with real RFC 9421 signatures
and a device-bound token, on a SQLite file with the production pragmas. The paired
baseline is the bare Flask app (``benchmarks/baseline_app.py``) driven the same way in
the same run, so each figure also comes as a ratio that the machine's drift cancels
out of (requests/s of the sync route over requests/s of the bare route).

Each figure comes with the CPU time the process spent (``cpu_seconds``, and the rate
per CPU second), which the other jobs of a shared machine inflate far less than the
wall time; ``load_average`` is the machine's at the end of the run.

The people are realistic (``push_creates``): the seeded office and the created
households are drawn from :func:`benchmarks.duplicate_pairs.background` (varied Korean
and Arabic names, birth years 1950-2010), so a new registration meets about as many
duplicate candidates as in a real office (about 0.9 a person, as
``benchmarks/eval_duplicates.py`` measures). Until December 2026 every principal was
"Bench Person {n}" and every child "Child {n}" born 2015: digits are not part of a name,
so every create met ~7.7 candidate members to seal-check and decrypt, a cost no office
pays. That figure is still reported, on its own office seeded the old way, as
``push_creates_same_names`` (the worst case of duplicate detection, not the target).

Usage, from the repository root::

    python benchmarks/sync_bench.py --out sync_bench.json [--cases 10000] [--profile out.prof]

``--profile`` writes a cProfile of the realistic create pushes (``pstats``, sort by tottime).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# The test configuration: its fast password hashing only shortens the one sign-in.
os.environ.setdefault("CASEWORK_ENV", "test")

from sqlalchemy import select

from benchmarks.audit_bench import sqlite_app
from benchmarks.baseline_app import app as baseline_app
from benchmarks.duplicate_pairs import background
from casework.authz.access import register_authenticator
from casework.cases.models import Case, CaseMember
from casework.cases.service import bulk_register
from casework.config import tune_gc
from casework.db import get_db
from casework.offices.models import Office
from casework.security.app import current_keyring
from casework.security.case_keys import attach_keyring
from casework.sync import feed
from tests.auth.helpers import TEST_PASSWORD, create_user
from tests.conftest import _test_principal_from_header
from tests.sync.signing import Device, enrol

OFFICE = "bench-01"
ADMIN = {"X-Test-Principal": "admin;;admin"}
PAGE = 500
BATCH = 100


def same_name_household(n: int) -> dict[str, Any]:
    """The old benchmark household: every principal "Bench Person {n}", every child
    "Child {n}" born 2015, the same name for all after normalisation (digits dropped)."""
    return {
        "specific_needs": ["SC-UC"] if n % 3 == 0 else [],
        "members": [
            {"relationship": "principal_applicant", "sex": "female", "birth_year": 1980 + n % 30,
             "full_name": f"Bench Person {n}", "phone": "+962790000000", "address": "Block 1"},
            {"relationship": "child", "sex": "male", "birth_year": 2015, "full_name": f"Child {n}"},
        ],
    }  # fmt: skip


#: One stream of realistic people: the seeded cases first, then the created ones.
PEOPLE_SEED = 100


def realistic_households(count: int, start: int = 0) -> list[dict[str, Any]]:
    """Households ``start`` to ``start + count - 1`` of the same shape as
    :func:`same_name_household` (a principal applicant with phone and address and a
    child, specific needs on every third), their people drawn from
    :func:`~benchmarks.duplicate_pairs.background` (two persons per household)."""
    people = [
        household["members"][0] for household in background(2 * (start + count), seed=PEOPLE_SEED)
    ][2 * start :]
    households = []
    for index in range(count):
        n = start + index
        adult, child = people[2 * index], people[2 * index + 1]
        households.append({
            "specific_needs": ["SC-UC"] if n % 3 == 0 else [],
            "members": [
                {"relationship": "principal_applicant", "sex": adult["sex"],
                 "birth_year": adult["birth_year"], "full_name": adult["full_name"],
                 "phone": f"+9627{n % 10**8:08d}", "address": f"Block {n % 97 + 1}"},
                {"relationship": "child", "sex": child["sex"], "birth_year": 2005 + n % 15,
                 "full_name": child["full_name"]},
            ],
        })  # fmt: skip
    return households


def _device(app: Any, office: str = OFFICE) -> Device:
    client = app.test_client()
    code = client.post(
        "/api/v1/devices/enrolment-codes", json={"office": office, "label": "bench"}, headers=ADMIN
    ).get_json()["code"]
    device = enrol(client, code)
    with get_db(app).session_factory() as session:
        user = create_user(app, session, "caseworker", office, mfa=False)
        username = user.username
        session.commit()
    assert device.login(username, TEST_PASSWORD).status_code == 200
    return device


def _seed(app: Any, count: int, make: Callable[[int, int], list[dict[str, Any]]]) -> float:
    """Register ``count`` cases in bulk (``make(count, start)`` builds them), then publish
    them to the feed; returns the seconds the feed backfill took (one snapshot a case)."""
    with app.app_context(), get_db(app).session_factory() as session:
        # A benchmark office: its caseworkers sign in by password alone (an audited exemption).
        session.add(Office(code=OFFICE, name="Bench", country_code="JOR", mfa_exempt=True))
        session.commit()
        attach_keyring(session, current_keyring())
        for start in range(0, count, 1000):
            households = make(min(count, start + 1000) - start, start)
            bulk_register(session, OFFICE, households, audit_each=False)
            session.commit()
        began = time.perf_counter()
        attach_keyring(session, current_keyring())
        feed.backfill(session)
        session.commit()
        return time.perf_counter() - began


def _baseline(app: Any, method: str, requests: int) -> float:
    client = baseline_app.test_client()
    began = time.perf_counter()
    for _ in range(requests):
        if method == "GET":
            client.get("/bare")
        else:
            client.post("/bare", json={"a": 1, "b": 2})
    return requests / (time.perf_counter() - began)


def pull(device: Device) -> dict[str, Any]:
    cursor, cases, requests = None, 0, 0
    began, cpu = time.perf_counter(), time.process_time()
    while True:
        response = device.pull(cursor, PAGE)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        cases += len(page["changes"])
        requests += 1
        cursor = page["cursor"]
        if not page["more"]:
            break
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    return {
        "cases": cases,
        "requests": requests,
        "seconds": round(seconds, 3),
        "cases_per_s": round(cases / seconds),
        "cpu_seconds": round(cpu, 3),
        "cases_per_cpu_s": round(cases / cpu),
        "requests_per_s": requests / seconds,
    }


def push(device: Device, mutations: list[dict[str, Any]]) -> dict[str, Any]:
    """Push ``mutations`` in requests of ``BATCH``; every one must apply, and every update
    must write a new version (an update that changes nothing would measure no write)."""
    began, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(mutations), BATCH):
        sent = mutations[start : start + BATCH]
        response = device.push(sent)
        assert response.status_code == 200, response.get_json()
        results = response.get_json()["results"]
        statuses = {r["status"] for r in results}
        assert statuses == {"applied"}, statuses
        for mutation, result in zip(sent, results, strict=True):
            if mutation["op"] == "update":
                assert result["version"] == mutation["base_version"] + 1, result
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    requests = -(-len(mutations) // BATCH)
    return {"mutations": len(mutations), "requests": requests, "seconds": round(seconds, 3),
            "mutations_per_s": round(len(mutations) / seconds), "cpu_seconds": round(cpu, 3),
            "mutations_per_cpu_s": round(len(mutations) / cpu),
            "requests_per_s": requests / seconds}  # fmt: skip


def updates(app: Any, first_seq: int, count: int) -> list[dict[str, Any]]:
    """One phone change per case; no seeded person has a +9638 number, so each one writes."""
    with app.app_context(), get_db(app).session_factory() as session:
        attach_keyring(session, current_keyring())
        rows = session.execute(
            select(Case.reference, Case.version, CaseMember.id)
            .join(CaseMember, CaseMember.case_id == Case.id)
            .where(CaseMember.position == 0)
            .limit(count)
        ).all()
    return [
        {"mutation_id": str(uuid.uuid4()), "device_seq": first_seq + n, "op": "update",
         "reference": ref, "base_version": version,
         "changes": {"members": {"change": [{"id": str(member), "phone": f"+9638{n:08d}"}]}}}
        for n, (ref, version, member) in enumerate(rows)
    ]  # fmt: skip


def creates(first_seq: int, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    mutations = []
    for n, body in enumerate(bodies):
        body["client_ref"] = str(uuid.uuid4())
        for member in body["members"]:
            member["client_ref"] = str(uuid.uuid4())
        mutations.append({"mutation_id": str(uuid.uuid4()), "device_seq": first_seq + n,
                          "op": "create", "changes": body})  # fmt: skip
    return mutations


def _same_names(cases: int, pushes: int, bare_post: float) -> dict[str, Any]:
    """The creates of the old benchmark, on an office seeded the old way (every person
    of the same name): the worst case of duplicate detection."""
    with (
        tempfile.TemporaryDirectory(prefix="casework-sync-bench-") as folder,
        sqlite_app(Path(folder)) as app,
    ):
        app.config["TESTING"] = True
        register_authenticator(app, _test_principal_from_header)
        _seed(
            app, cases, lambda count, start: [same_name_household(start + n) for n in range(count)]
        )
        device = _device(app)
        bodies = [same_name_household(n) for n in range(pushes)]
        created = push(device, creates(1, bodies))
    created["ratio_to_baseline"] = round(created.pop("requests_per_s") / bare_post, 4)
    return created


def run(
    cases: int, pushes: int, profile: Path | None = None, gc_young_threshold: int = 0
) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="casework-sync-bench-") as folder,
        sqlite_app(Path(folder)) as app,
    ):
        app.config["TESTING"] = True  # the test-principal header and fast password hashes
        register_authenticator(app, _test_principal_from_header)
        backfill_s = _seed(app, cases, realistic_households)
        device = _device(app)
        tune_gc(gc_young_threshold)  # as a serving worker does (0: CPython's defaults)
        bare_get = _baseline(app, "GET", 2000)
        pulled = pull(device)
        bare_post = _baseline(app, "POST", 2000)
        updated = push(device, updates(app, 1, pushes))
        bodies = realistic_households(pushes, start=cases)  # people not yet in the office
        profiler = cProfile.Profile() if profile is not None else None
        if profiler is not None:
            profiler.enable()
        created = push(device, creates(1 + pushes, bodies))
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(profile))
    same_names = _same_names(cases, pushes, bare_post)
    pulled["ratio_to_baseline"] = round(pulled.pop("requests_per_s") / bare_get, 4)
    for figures in (updated, created):
        figures["ratio_to_baseline"] = round(figures.pop("requests_per_s") / bare_post, 4)
    return {
        "backend": "sqlite",
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "baseline_get_per_s": round(bare_get),
        "baseline_post_per_s": round(bare_post),
        "feed_backfill_cases_per_s": round(cases / backfill_s),
        "pull": pulled,
        "push_updates": updated,
        "push_creates": created,
        "push_creates_same_names": same_names,
        "targets": {
            "pull_cases_per_s": 3000,
            "push_updates_per_s": 1000,
            "push_creates_per_s": 300,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--pushes", type=int, default=1000)
    parser.add_argument("--profile", type=Path, help="cProfile of the realistic create pushes")
    parser.add_argument("--gc-young-threshold", type=int, default=0)
    args = parser.parse_args(argv)
    figures = run(args.cases, args.pushes, args.profile, args.gc_young_threshold)
    text = json.dumps(figures, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
