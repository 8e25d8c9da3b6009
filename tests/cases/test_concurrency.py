"""Two editors at the same moment, on a service that really commits: one wins, one gets 412."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from casework.cases.duplicates import raise_alert
from casework.cases.models import Case, DuplicateAlert
from casework.db import get_db
from tests.cases.scratch import Scratch, scratch_service

CASES = "/api/v1/cases"
OFFICE = "conc-01"
WORKER = {"X-Test-Principal": f"caseworker;{OFFICE};editor"}


@pytest.fixture
def scratch(database_url: str, tmp_path: Path) -> Iterator[Scratch]:
    with scratch_service(database_url, tmp_path) as service:
        service.add_office(OFFICE)
        yield service


def test_simultaneous_patches_with_one_etag(scratch: Scratch) -> None:
    client = scratch.app.test_client()
    body = {
        "members": [
            {
                "relationship": "principal_applicant",
                "sex": "female",
                "full_name": "Concurrent Editor",
                "phone": "+1 000 000",
            }
        ]
    }
    created = client.post(CASES, json=body, headers=WORKER).get_json()
    url, head = f"{CASES}/{created['reference']}", created["members"][0]["id"]
    edits = [
        {"specific_needs": ["SC-UC"]},
        {"members": {"change": [{"id": head, "phone": "+2 222 222"}]}},
    ]
    barrier = threading.Barrier(len(edits))
    results: list[Any] = [None] * len(edits)

    def edit(position: int) -> None:
        own_client = scratch.app.test_client()
        barrier.wait()
        response = own_client.patch(
            url, json=edits[position], headers={**WORKER, "If-Match": '"v1"'}
        )
        results[position] = response.status_code

    threads = [threading.Thread(target=edit, args=(i,)) for i in range(len(edits))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [200, 412]
    winner = results.index(200)
    final = client.get(url, headers=WORKER).get_json()
    assert final["version"] == 2
    if winner == 0:
        assert (final["specific_needs"], final["members"][0]["phone"]) == (["SC-UC"], "+1 000 000")
    else:
        assert (final["specific_needs"], final["members"][0]["phone"]) == ([], "+2 222 222")


def _household(name: str) -> dict[str, Any]:
    return {"members": [{"relationship": "principal_applicant", "sex": "male", "full_name": name}]}


def test_one_alert_when_two_offices_detect_the_same_pair_at_once(scratch: Scratch) -> None:
    """The second detector waits for the first and then finds the alert: no error, no twin."""
    other_office = scratch.add_office("conc-02")
    client = scratch.app.test_client()
    # Different names, so that intake raises nothing; the test raises the alert itself.
    references = [
        client.post(CASES, json=_household(name), headers=headers).get_json()["reference"]
        for name, headers in (
            ("Twin One", WORKER),
            ("Twin Two", {"X-Test-Principal": f"caseworker;{other_office};b"}),
        )
    ]
    factory = get_db(scratch.app).session_factory
    with scratch.app.app_context(), factory() as first:
        cases = list(first.scalars(select(Case).where(Case.reference.in_(references))))
        assert raise_alert(first, cases[0], cases[1], "name_birth_year") is True
        outcome: list[Any] = []

        def second_detector() -> None:
            with scratch.app.app_context(), factory() as second:
                mine = list(second.scalars(select(Case).where(Case.reference.in_(references))))
                try:
                    outcome.append(raise_alert(second, mine[1], mine[0], "name_birth_year"))
                    second.commit()
                except Exception as error:  # the failure is the finding
                    outcome.append(error)

        thread = threading.Thread(target=second_detector)
        thread.start()
        thread.join(timeout=1)  # it waits on the first transaction's lock
        first.commit()
        thread.join(timeout=30)
    assert outcome == [False]
    with factory() as check:
        assert check.scalar(select(func.count()).select_from(DuplicateAlert)) == 1
