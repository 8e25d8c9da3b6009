"""Exactly-once under faults: push an outbox to a real gunicorn that is killed (kill -9)
before and after commits at random, restart it, resend, until every mutation has a
final result; then count what the database holds.

``python -m tests.sync.faults --mutations 1000 --seed 7`` is the long run
(``make sync-faults``); ``test_faults.py`` runs a short one in ``make test``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from benchmarks.gunicorn_server import GunicornConfig, GunicornServer
from casework.cases.models import Case
from casework.db import get_db
from casework.sync.models import ClientRef, Mutation
from tests.cases.scratch import Scratch, scratch_service
from tests.sync.conftest import household
from tests.sync.scratch_sync import signed_in_device
from tests.sync.signing import Device, new_mutation, signed_headers

OFFICE = "fault-01"
FINAL = {"applied", "duplicate", "conflict", "rejected"}


def outbox(count: int, rng: random.Random) -> list[dict[str, Any]]:
    """Creates, and updates (by client_ref) of cases created earlier in the outbox."""
    mutations: list[dict[str, Any]] = []
    created: list[dict[str, Any]] = []
    for seq in range(1, count + 1):
        if created and rng.random() < 0.3:
            target = rng.choice(created)
            change = {"members": {"change": [{"id": target["member"], "phone": f"+{seq:09d}"}]}}
            mutations.append(
                new_mutation(seq, "update", change, reference=target["case"], base_version=1)
            )
            continue
        body = household(full_name=f"Person {seq}")
        body["client_ref"] = str(uuid.uuid4())
        body["members"][0]["client_ref"] = str(uuid.uuid4())
        created.append({"case": body["client_ref"], "member": body["members"][0]["client_ref"]})
        mutations.append(new_mutation(seq, "create", body))
    return mutations


def send(server: GunicornServer, device: Device, batch: list[dict[str, Any]]) -> Any:
    """POST a signed push over a real socket; None when the connection dies."""
    raw = json.dumps({"mutations": batch}).encode()
    url = f"{server.url}/api/v1/sync/push"
    headers = signed_headers(device.key, device.device_id, "POST", url, raw, device.token)
    connection = http.client.HTTPConnection(server.host, server.port, timeout=60)
    try:
        connection.request("POST", "/api/v1/sync/push", body=raw, headers=headers)
        response = connection.getresponse()
        payload = response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
    assert response.status == 200, (response.status, payload[:300])
    return json.loads(payload)


def run(
    scratch: Scratch, workdir: Path, count: int, batch_size: int, rate: float, seed: int
) -> dict[str, int]:
    rng = random.Random(seed)
    scratch.add_office(OFFICE)
    device = signed_in_device(scratch, OFFICE)
    mutations = outbox(count, rng)
    env = {
        **os.environ,
        "CASEWORK_ENV": "test",
        "CASEWORK_DATABASE_URL": scratch.url,
        "CASEWORK_INSTANCE_PATH": str(Path(scratch.app.instance_path)),
        "SYNC_FAULT_KILL_RATE": str(rate),
        "SYNC_FAULT_LOG": str(workdir / "kills.log"),
    }
    config = GunicornConfig(workers=1, threads=4)
    pending = list(mutations)
    first_status: dict[str, str] = {}
    crashes = 0
    server = GunicornServer(
        "tests.sync.fault_app:app", config, env=env, workdir=workdir, ready_path="/healthz"
    )
    server.env["SYNC_FAULT_SEED"] = f"{seed}-0"
    server.start()
    try:
        while pending:
            batch = pending[:batch_size]
            answer = send(server, device, batch)
            if answer is None:
                crashes += 1
                server.stop()
                server.env["SYNC_FAULT_SEED"] = f"{seed}-{crashes}"
                server.start()
                continue
            done = set()
            for result in answer["results"]:
                first_status.setdefault(result["mutation_id"], result["status"])
                if result["status"] in FINAL:
                    done.add(result["mutation_id"])
            pending = [m for m in pending if m["mutation_id"] not in done]
    finally:
        server.stop()
    kills = (workdir / "kills.log").read_text().split() if crashes else []
    return {
        **verify(scratch, mutations, crashes),
        "killed_before_commit": kills.count("before"),
        "killed_after_commit": kills.count("after"),
    }


def verify(scratch: Scratch, mutations: list[dict[str, Any]], crashes: int) -> dict[str, int]:
    creates = sum(1 for m in mutations if m["op"] == "create")
    with get_db(scratch.app).session_factory() as session:
        cases = session.scalar(
            select(func.count()).select_from(Case).where(Case.office_code == OFFICE)
        )
        stored = session.scalar(select(func.count()).select_from(Mutation))
        refs = session.scalar(select(func.count()).select_from(ClientRef))
        statuses = dict(
            session.execute(select(Mutation.status, func.count()).group_by(Mutation.status)).all()
        )
    assert cases == creates, (cases, creates)
    assert stored == len(mutations), (stored, len(mutations))
    assert refs == 2 * creates
    assert statuses.get("rejected", 0) == 0, statuses
    return {"mutations": len(mutations), "creates": creates, "crashes": crashes, **statuses}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mutations", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=os.environ.get("CASEWORK_TEST_DATABASE_URL", ""))
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="casework-faults-") as folder,
        scratch_service(args.database_url, Path(folder)) as scratch,
    ):
        figures = run(
            scratch, Path(folder) / "gunicorn", args.mutations, args.batch, args.rate, args.seed
        )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
