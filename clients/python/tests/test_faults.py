"""Exactly once over a bad link: proxy faults and ``kill -9`` of the client, over seeds.

``make test`` runs a few seeds; ``make client-faults`` runs many
(``CASEWORK_SYNC_FAULT_SEEDS``, default 40). After quiescence every mutation
has a final result, each applied exactly once (a case's version rose by
exactly its number of applied updates; one case per create), and the
replica's (reference, version) pairs equal the server's.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_proxy import FaultProxy
from sync_harness import PASSPHRASE, SyncServer, intake, new_device, server_has_sync

from casework_sync import Client, LinkDown, RetryPolicy

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not server_has_sync(), reason="this server has no sync API"),
]

FEW_SEEDS = [11, 12]
MANY_SEEDS = [
    pytest.param(seed, marks=pytest.mark.faults)
    for seed in range(100, 100 + int(os.environ.get("CASEWORK_SYNC_FAULT_SEEDS", "40")))
]
FAULTY_RETRY = RetryPolicy(attempts=2, first_delay_s=0.02, max_delay_s=0.05)
NEEDS = ["SM-MI", "ER-NF", "DS-BD", "LP-ND", "SP-PT"]


@pytest.fixture(scope="module")
def proxy(server: SyncServer) -> Iterator[FaultProxy]:
    port = int(server.url.rsplit(":", 1)[1])
    faults = FaultProxy(port, seed=0)
    yield faults
    faults.close()


@pytest.fixture(scope="module")
def faulty_device(
    server: SyncServer, proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Client]:
    proxy.enabled = False
    device = new_device(
        server,
        tmp_path_factory.mktemp("faulty"),
        server.take(),
        url=proxy.url,
        timeout=3.0,
        retry=FAULTY_RETRY,
    )
    yield device
    device.close()


def offline_work(device: Client, rng: random.Random, new_cases: tuple[int, int] = (2, 8)) -> None:
    """New cases and edits of existing ones, as a day offline would bring."""
    for number in range(rng.randint(*new_cases)):
        device.new_case(intake(f"Seeded Person {rng.random():.6f} {number}"))
    known = [c["reference"] for c in device.cases() if c["reference"]]
    for reference in rng.sample(known, min(len(known), rng.randint(1, 6))):
        case = device.case(reference)
        member = case["members"][0]["id"]
        if rng.random() < 0.5:
            device.edit_case(reference, {"specific_needs": rng.sample(NEEDS, rng.randint(0, 3))})
        device.edit_case(
            reference,
            {"members": {"change": [{"id": member, "phone": f"+1 {rng.randint(1000, 99999)}"}]}},
        )


def expectations(device: Client) -> list[dict[str, Any]]:
    return [m.body for m in device.replica.pending()]


def check_exactly_once(
    server: SyncServer,
    device: Client,
    sent: list[dict[str, Any]],
    before: dict[str, int],
) -> None:
    """Every mutation final; one case per create; versions rose by the applied updates."""
    assert device.status().pending == 0
    results = {
        stored["result"]["mutation_id"]: stored["result"] for stored in device.replica.results()
    }
    statuses = Counter(results[m["mutation_id"]]["status"] for m in sent)
    assert set(statuses) <= {"applied", "duplicate"}, statuses
    after = server.in_app("case_versions", office=server.office)
    creates = [m for m in sent if m["op"] == "create"]
    created = {results[m["mutation_id"]]["reference"] for m in creates}
    assert len(created) == len(creates)
    assert set(after) - set(before) == created  # no duplicate case from a resend
    updates = Counter(m["reference"] for m in sent if m["op"] == "update")
    for reference, count in updates.items():
        assert after[reference] == before[reference] + count, reference
    replica = dict(device.replica.server_pairs())
    assert replica == after  # the replica's checkpoint is the server's, pair by pair


def sync_until_quiet(device: Client, proxy: FaultProxy, rounds: int = 40) -> None:
    for _ in range(rounds):
        try:
            device.sync()
            break
        except LinkDown:
            continue
    proxy.enabled = False
    report = device.sync()  # quiescence: the link is good again
    assert report.checkpoint_ok


def run_seed(server: SyncServer, proxy: FaultProxy, device: Client, seed: int) -> None:
    rng = random.Random(seed)
    proxy.enabled = False
    device.sync()
    before = server.in_app("case_versions", office=server.office)
    offline_work(device, rng)
    sent = expectations(device)
    proxy.reseed(seed, rate=rng.uniform(0.2, 0.6))
    proxy.enabled = True
    sync_until_quiet(device, proxy)
    check_exactly_once(server, device, sent, before)


@pytest.mark.parametrize("seed", FEW_SEEDS)
def test_sync_over_a_faulty_link_applies_each_mutation_once(
    server: SyncServer, proxy: FaultProxy, faulty_device: Client, seed: int
) -> None:
    run_seed(server, proxy, faulty_device, seed)
    assert proxy.stats["requests"] > 0


@pytest.mark.parametrize("seed", MANY_SEEDS)
def test_many_seeds_over_a_faulty_link(
    server: SyncServer, proxy: FaultProxy, faulty_device: Client, seed: int
) -> None:
    run_seed(server, proxy, faulty_device, seed)


def _cli_sync(home: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "casework_sync.cli",
            "--home",
            str(home),
            "--passphrase-fd",
            "0",
            "sync",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_runs(home: Path, rng: random.Random, kills: int) -> int:
    """Start ``casework-sync sync`` and ``kill -9`` it at a random moment, ``kills`` times."""
    killed = 0
    for _ in range(kills):
        process = _cli_sync(home)
        assert process.stdin is not None
        process.stdin.write(PASSPHRASE.encode() + b"\n")
        process.stdin.close()
        time.sleep(rng.uniform(0.2, 2.5))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        process.wait()
    return killed


def run_kill_seed(server: SyncServer, proxy: FaultProxy, home: Path, seed: int, kills: int) -> None:
    rng = random.Random(seed)
    proxy.enabled = False
    with Client(home, PASSPHRASE, retry=FAULTY_RETRY) as device:
        device.sync()
        before = server.in_app("case_versions", office=server.office)
        offline_work(device, rng, new_cases=(60, 160))  # one or two push batches
        sent = expectations(device)
    proxy.reseed(seed, rate=0.5, faults=("delay",))
    proxy.enabled = True
    kill_runs(home, rng, kills)
    proxy.enabled = False
    with Client(home, PASSPHRASE) as device:
        assert device.sync().checkpoint_ok
        check_exactly_once(server, device, sent, before)


@pytest.fixture(scope="module")
def kill_home(
    server: SyncServer, proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    home = tmp_path_factory.mktemp("killed")
    proxy.enabled = False
    new_device(server, home, server.take(), url=proxy.url).close()
    return home


@pytest.mark.parametrize("seed", [21])
def test_a_sync_killed_at_random_points_resumes_exactly_once(
    server: SyncServer, proxy: FaultProxy, kill_home: Path, seed: int
) -> None:
    run_kill_seed(server, proxy, kill_home, seed, kills=3)


@pytest.mark.parametrize(
    "seed",
    [
        pytest.param(seed, marks=pytest.mark.faults)
        for seed in range(
            200, 200 + max(1, int(os.environ.get("CASEWORK_SYNC_FAULT_SEEDS", "40")) // 4)
        )
    ],
)
def test_many_kill_seeds(server: SyncServer, proxy: FaultProxy, kill_home: Path, seed: int) -> None:
    run_kill_seed(server, proxy, kill_home, seed, kills=4)
