"""The reports API: a population where naive counts would single one person out."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.audit.models import AuditEntry
from casework.reports import service
from casework.reports.codes import HXL_TAGS, ReportName
from tests.conftest import principal_headers
from tests.reports.conftest import BIG, REPORTS, SMALL, cells, child, count_of, person

K = 5
STATELESS = {"birth_registration": "not_registered", "nationality_status": "stateless_determined"}


@pytest.fixture
def population(offices: Any, add_cases: Callable[..., Any], add_event: Callable[..., Any]) -> Any:
    """Many ordinary households in the big office; in the small one, a single stateless child;
    and in March a single arrival of a person over 60."""
    big = add_cases(BIG, [{"members": [person(), child()]} for _ in range(12)], "2026-01")
    add_cases(BIG, [{"members": [person(sex="male")]} for _ in range(8)], "2026-02")
    add_cases(SMALL, [{"members": [person()]} for _ in range(6)], "2026-01")
    (lonely,) = add_cases(SMALL, [{"members": [person(), child(**STATELESS)]}], "2026-01")
    (elder,) = add_cases(BIG, [{"members": [person(birth_year=1950)]}], "2026-03")
    category = {"categories": ["medical_needs"]}
    for case in big[:6]:
        add_event(case, "2026-02", {"kind": "funnel", "step": "submitted", **category})
        add_event(case, "2026-03", {"kind": "funnel", "step": "arrived", **category})
    add_event(elder, "2026-04", {"kind": "funnel", "step": "arrived", **category})
    for case in big[:7]:
        add_event(
            case, "2026-01", {"kind": "decision", "decision": "vetting", "outcome": "cleared"}
        )
    add_event(lonely, "2026-01", {"kind": "decision", "decision": "vetting", "outcome": "rejected"})
    return {"lonely": lonely, "elder": elder}


def run(client: FlaskClient, headers: dict[str, str], name: str, **query: str) -> Any:
    response = client.get(f"{REPORTS}/{name}", query_string=query, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def every_view(client: FlaskClient, headers: dict[str, str], name: str) -> dict[Any, Any]:
    months = ("2026-01", "2026-02", "2026-03", "2026-04")
    views = {}
    for office, month in itertools.product((None, BIG, SMALL), (None, *months)):
        query = {k: v for k, v in (("office", office), ("month", month)) if v}
        views[(office, month)] = run(client, headers, name, **query)
    return views


def figures(body: dict[str, Any]) -> list[int | None]:
    return [count_of(item) for item in body["cells"] + body["totals"]]


def test_the_reports_are_listed(client: FlaskClient, analyst: dict[str, str]) -> None:
    body = client.get(REPORTS, headers=analyst).get_json()
    assert [item["name"] for item in body["items"]] == [name.value for name in ReportName]


@pytest.mark.parametrize("name", [name.value for name in ReportName])
def test_no_view_of_any_report_shows_a_count_below_k(
    client: FlaskClient, analyst: dict[str, str], population: Any, name: str
) -> None:
    for view in every_view(client, analyst, name).values():
        shown = [f for f in figures(view) if f is not None]
        assert all(f == 0 or f >= K for f in shown), (name, view["filters"])


def test_the_lonely_stateless_child_is_found_by_no_difference(
    client: FlaskClient, analyst: dict[str, str], population: Any
) -> None:
    name = ReportName.CHILDREN_BY_REGISTRATION_NATIONALITY.value
    views = every_view(client, analyst, name)
    where = {"birth_registration": "not_registered", "nationality_status": "stateless_determined"}
    (small,) = cells(views[(SMALL, None)], **where)
    assert count_of(small) is None
    # every office minus the others; every month minus the others: never the one child
    for month in (None, "2026-01"):
        (whole,) = cells(views[(None, month)], **where)
        (big,) = cells(views[(BIG, month)], **where)
        if count_of(whole) is not None and count_of(big) is not None:
            assert count_of(whole) - count_of(big) != 1
    # the small office's total against its other cells, and against the people report
    total = count_of(views[(SMALL, None)]["totals"][-1])
    people = run(client, analyst, ReportName.PEOPLE_BY_SEX_AGE_NEEDS.value, office=SMALL)
    child_rows = [c for c in people["cells"] if c["age_band"] in ("0-4", "5-11", "12-17")]
    assert all(count_of(c) in (0, None) for c in child_rows)
    assert total in (0, None)


def test_a_single_arrival_in_a_month_is_suppressed(
    client: FlaskClient, analyst: dict[str, str], population: Any
) -> None:
    name = ReportName.RESETTLEMENT_FUNNEL.value
    april = run(client, analyst, name, month="2026-04")
    (arrived,) = cells(april, month="2026-04", category="medical_needs", step="arrived")
    assert count_of(arrived) is None
    march = run(client, analyst, name, month="2026-03")
    (six,) = cells(march, month="2026-03", category="medical_needs", step="arrived")
    assert count_of(six) == 6
    # all months against the months shown: the April arrival is in no figure
    everything = run(client, analyst, name)
    margin = [t for t in everything["totals"] if t.get("step") == "arrived"]
    assert [count_of(t) for t in margin] == [6]


def test_csv_has_hxl_tags_and_a_suppression_flag(
    client: FlaskClient, analyst: dict[str, str], population: Any
) -> None:
    name = ReportName.CHILDREN_BY_REGISTRATION_NATIONALITY.value
    for options in ({"query_string": {"format": "csv"}}, {"headers": {"Accept": "text/csv"}}):
        headers = {**analyst, **options.get("headers", {})}
        response = client.get(
            f"{REPORTS}/{name}",
            query_string={"office": SMALL, **options.get("query_string", {})},
            headers=headers,
        )
        assert response.status_code == 200
        assert response.mimetype == "text/csv"
        rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
        assert rows[0] == ["birth_registration", "nationality_status", "count", "suppressed"]
        assert rows[1] == [HXL_TAGS[column] for column in rows[0]]
        lonely = [r for r in rows if r[:2] == ["not_registered", "stateless_determined"]]
        assert lonely == [["not_registered", "stateless_determined", "", "1"]]
        assert all(r[2] == "" or r[2] == "0" or int(r[2]) >= K for r in rows[2:])


def test_one_access_log_entry_per_run_with_filter_names_only(
    client: FlaskClient, analyst: dict[str, str], population: Any, db_session: Session
) -> None:
    before = db_session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1))
    name = ReportName.PEOPLE_BY_SEX_AGE_NEEDS.value
    run(client, analyst, name, office=SMALL, month="2026-01")
    entries = db_session.scalars(select(AuditEntry).where(AuditEntry.seq > before)).all()
    assert [(e.action, e.target) for e in entries] == [("report.run", name)]
    assert sorted(json.loads(entries[0].fields)) == ["month", "office"]
    stored = " ".join(str(getattr(entries[0], c.name)) for c in AuditEntry.__table__.columns)
    assert SMALL not in stored
    assert "2026-01" not in stored


def test_supervisors_see_their_own_office_only(
    client: FlaskClient, population: Any, offices: Any
) -> None:
    name = ReportName.CASES_BY_OFFICE_STAGE.value
    supervisor = principal_headers("supervisor", SMALL, "sup-small")
    body = run(client, supervisor, name)
    assert body["filters"]["office"] == SMALL
    assert {c["office"] for c in body["cells"]} == {SMALL}
    (intake,) = cells(body, office=SMALL, stage="intake")
    assert count_of(intake) == 7
    outside = client.get(f"{REPORTS}/{name}", query_string={"office": BIG}, headers=supervisor)
    assert outside.status_code == 404
    caseworker = principal_headers("caseworker", SMALL, "cw-small")
    assert client.get(f"{REPORTS}/{name}", headers=caseworker).status_code == 403


def test_an_analyst_sees_every_office_in_aggregate(
    client: FlaskClient, analyst: dict[str, str], population: Any
) -> None:
    body = run(client, analyst, ReportName.CASES_BY_OFFICE_STAGE.value)
    assert {BIG, SMALL} <= {c["office"] for c in body["cells"]}
    (big,) = cells(body, office=BIG, stage="intake")
    # 12 in January and 8 in February; March's single case is withheld from every figure
    assert count_of(big) == 20


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"month": "2026-13"}, 422),
        ({"month": "2026-1"}, 422),
        ({"from": "2026-01-01"}, 422),
        ({"office": "no-such-office"}, 404),
        ({"format": "xml"}, 422),
    ],
)
def test_only_whole_offices_and_months(
    client: FlaskClient, analyst: dict[str, str], offices: Any, query: dict[str, str], status: int
) -> None:
    response = client.get(
        f"{REPORTS}/{ReportName.CASES_BY_OFFICE_STAGE.value}", query_string=query, headers=analyst
    )
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"


def test_an_unknown_report_is_not_found(client: FlaskClient, analyst: dict[str, str]) -> None:
    assert client.get(f"{REPORTS}/everyone", headers=analyst).status_code == 404


def test_rounding_publishes_multiples(app: Any, db_session: Session, population: Any) -> None:
    spec = service.spec_for(ReportName.CASES_BY_OFFICE_STAGE.value)
    with app.app_context():
        result = service.compute(db_session, spec, service.Filters(BIG), service.Settings(K, 10, 1))
    (intake,) = [v for key, v in result.table.cells if key == (BIG, "intake")]
    assert intake == 20
