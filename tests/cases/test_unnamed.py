"""A child under 2 may be registered before it has a name (``unnamed: true``), named later;
duplicate detection leaves the missing name out."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.cases.conftest import CASES, household, member


def _baby(**fields: Any) -> dict[str, Any]:
    body = member(relationship="child", sex="male", unnamed=True, **fields)
    del body["full_name"]
    return body


def _this_year() -> int:
    return datetime.datetime.now(datetime.UTC).year


def test_an_unnamed_newborn_is_registered_and_named_later(
    client: FlaskClient, worker_a: dict[str, str]
) -> None:
    created = client.post(
        CASES, json=household(member(), _baby(birth_year=_this_year())), headers=worker_a
    )
    assert created.status_code == 201, created.get_json()
    case = created.get_json()
    baby = case["members"][1]
    assert baby["unnamed"] is True
    assert baby["full_name"] is None
    assert case["members"][0]["unnamed"] is False
    named = client.patch(
        f"{CASES}/{case['reference']}",
        json={"members": {"change": [{"id": baby["id"], "full_name": "Omar Newborn"}]}},
        headers={**worker_a, "If-Match": '"v1"'},
    )
    assert named.status_code == 200, named.get_json()
    after = named.get_json()["members"][1]
    assert (after["full_name"], after["unnamed"]) == ("Omar Newborn", False)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"birth_year": 2000}, "unnamed"),  # too old
        ({"birth_year": None}, "unnamed"),  # age unknown
        ({"full_name": "Named Anyway"}, "unnamed"),  # both
        ({"unnamed": False}, "full_name"),  # neither
    ],
)
def test_unnamed_is_for_a_child_under_2_with_no_name(
    client: FlaskClient, worker_a: dict[str, str], change: dict[str, Any], field: str
) -> None:
    baby = {**_baby(birth_year=_this_year()), **change}
    refused = client.post(CASES, json=household(member(), baby), headers=worker_a)
    assert refused.status_code == 422
    assert field in refused.get_json()["errors"]["json"]["members"]["1"]


def test_an_empty_name_is_not_unnamed(client: FlaskClient, worker_a: dict[str, str]) -> None:
    baby = member(relationship="child", full_name="", birth_year=_this_year())
    assert client.post(CASES, json=household(member(), baby), headers=worker_a).status_code == 422


def test_unnamed_is_set_at_registration_only(client: FlaskClient, worker_a: dict[str, str]) -> None:
    case = client.post(CASES, json=household(), headers=worker_a).get_json()
    head = case["members"][0]["id"]
    refused = client.patch(
        f"{CASES}/{case['reference']}",
        json={"members": {"change": [{"id": head, "unnamed": True}]}},
        headers={**worker_a, "If-Match": '"v1"'},
    )
    assert refused.status_code == 422


def test_duplicate_detection_ignores_the_missing_name(
    client: FlaskClient, worker_a: dict[str, str]
) -> None:
    year = _this_year()
    first = client.post(CASES, json=household(member(), _baby(birth_year=year)), headers=worker_a)
    second = client.post(CASES, json=household(member(), _baby(birth_year=year)), headers=worker_a)
    assert first.status_code == second.status_code == 201
    reference = second.get_json()["reference"]
    found = client.post(f"{CASES}/{reference}/duplicates", headers=worker_a)
    assert found.status_code == 200
    assert first.get_json()["reference"] not in str(found.get_json())
