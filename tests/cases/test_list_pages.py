"""The list page and the search, to the byte: what they send, in which order, and the
access-log entries they leave (one per case shown), whatever the statements behind them."""

from __future__ import annotations

import datetime
import json
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from casework.cases.models import Case
from tests.cases.conftest import CASES, audit_entries, household, member, unique


def _summary(reference: str, members: int, needs: list[str]) -> str:
    """One summary as the API sends it: compact JSON, in the order the view is built."""
    return (
        f'{{"reference":"{reference}","office":"amm-01","stage":"intake",'
        f'"resettlement_stage":"not_considered","member_count":{members},'
        f'"specific_needs":{json.dumps(needs, separators=(",", ":"))}}}'
    )


def test_a_list_page_and_a_search_answer_exactly_these_bytes(
    client: FlaskClient, db_session: Session, worker_a: dict[str, str], register: Any
) -> None:
    document = unique("PB-")
    first = register(
        worker_a,
        household(
            member(documents=[{"type": "passport", "number": document}]),
            member(relationship="spouse", sex="male", full_name="Sam Byte", birth_year=1987),
            specific_needs=["SC-UC", "LP-RR"],
        ),
    )["reference"]
    second = register(worker_a, household(member()))["reference"]

    listed = client.get(CASES, headers=worker_a)
    assert listed.status_code == 200
    assert listed.mimetype == "application/json"
    assert (
        listed.data
        == (
            f'{{"items":[{_summary(second, 1, [])},{_summary(first, 2, ["SC-UC", "LP-RR"])}],'
            f'"next_cursor":null}}\n'
        ).encode()
    )

    found = client.post(f"{CASES}/search", json={"document_number": document}, headers=worker_a)
    assert found.status_code == 200
    assert found.data == (f'{{"items":[{_summary(first, 2, ["SC-UC", "LP-RR"])}]}}\n').encode()

    # Every case shown, one entry each, with the fields a summary shows.
    fields = sorted(["member_count", "resettlement_stage", "specific_needs", "stage"])
    listed_entries = audit_entries(db_session, action="case.list")
    assert sorted(e.target for e in listed_entries) == sorted([first, second])
    assert {e.fields for e in listed_entries} == {json.dumps(fields)}
    (searched,) = audit_entries(db_session, action="case.search")
    assert searched.target == first
    assert json.loads(searched.fields) == sorted(["members.documents", *fields])


def _child() -> dict[str, Any]:
    return member(relationship="child", sex="male", birth_year=2017)


def test_cases_registered_at_one_instant_are_paged_by_id_each_once(
    client: FlaskClient, db_session: Session, worker_a: dict[str, str], register: Any
) -> None:
    """A bulk import gives many cases one time: the page is cut by id among them, and a
    stage filter and the cursor still apply to the cases of the page only."""
    made = [
        register(worker_a, household(member(), *[_child() for _ in range(i % 3)]))["reference"]
        for i in range(7)
    ]
    at = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    db_session.execute(update(Case).where(Case.reference.in_(made)).values(created_at=at))
    db_session.commit()
    ids = dict(
        db_session.execute(select(Case.reference, Case.id).where(Case.reference.in_(made))).all()
    )
    wanted = sorted(made, key=lambda ref: ids[ref], reverse=True)
    counts = {ref: 1 + i % 3 for i, ref in enumerate(made)}

    for query in ({}, {"stage": "intake"}):
        seen: list[str] = []
        cursor = None
        while True:
            args = {"limit": 3, **query, **({"cursor": cursor} if cursor else {})}
            page = client.get(CASES, query_string=args, headers=worker_a).get_json()
            items = page["items"]
            assert all(item["member_count"] == counts[item["reference"]] for item in items)
            seen += [item["reference"] for item in items]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert len(items) == 3
        assert seen == wanted
    walked = audit_entries(db_session, action="case.list")
    assert sorted(e.target for e in walked) == sorted(made * 2)
    empty = client.get(CASES, query_string={"stage": "vetting"}, headers=worker_a).get_json()
    assert empty == {"items": [], "next_cursor": None}


def test_a_search_by_document_opens_no_name(
    client: FlaskClient, worker_a: dict[str, str], register: Any, monkeypatch: Any
) -> None:
    """A candidate is confirmed by its documents alone: its names stay sealed."""
    from casework.cases.models import CaseMember

    document = unique("PN-")
    reference = register(
        worker_a, household(member(documents=[{"type": "passport", "number": document}]))
    )["reference"]

    def refuse(_data: bytes) -> None:
        raise AssertionError("decrypted a field a search by document does not need")

    for name in ("full_name", "other_names", "narrative", "phone", "address"):
        monkeypatch.setattr(getattr(CaseMember, name).codec, "decode", refuse)
    found = client.post(f"{CASES}/search", json={"document_number": document}, headers=worker_a)
    assert found.status_code == 200
    assert [item["reference"] for item in found.get_json()["items"]] == [reference]
