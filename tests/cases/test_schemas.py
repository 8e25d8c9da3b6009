import contextlib
import copy
import datetime
import importlib
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError

from casework.cases import rules, schemas
from casework.cases.codes import BirthRegistration, Relationship, Sex
from casework.cases.schemas import (
    CaseOut,
    CaseSummaryOut,
    CaseUpdateIn,
    HistoryEntryOut,
    IntakeIn,
    MemberOut,
    SearchIn,
)

TODAY = datetime.date(2025, 6, 1)
MARKER = "Zebulon4471"  # a value that must never come back in an error message


@pytest.fixture(autouse=True)
def _fixed_today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules, "utc_today", lambda: TODAY)


def household() -> dict[str, Any]:
    return {
        "office": "amm-01",
        "specific_needs": ["SC-UC", "LP-RR"],
        "members": [
            {
                "relationship": "principal_applicant",
                "sex": "female",
                "birth_year": 1990,
                "full_name": "Amina Example",
                "other_names": ["Aminah Exemple"],
                "country_of_origin": "SYR",
                "date_of_birth": "1990-03-04",
                "place_of_birth": "Example Town",
                "documents": [{"type": "passport", "number": "P0000000"}],
                "phone": "+000 (0) 12-345/678",
                "address": "Block 4,\nShelter 12",
                "narrative": "Fled in 2020.\n\tArrived alone.",
            },
            {
                "relationship": "child",
                "sex": "male",
                "birth_year": 2015,
                "full_name": "Omar Example",
                "mother": 0,
                "birth_registration": "not_registered",
                "nationality_status": "at_risk_of_statelessness",
                "registration_risk": {
                    "exposes_parent": True,
                    "decision": "defer",
                    "reason": "Mother has no status and faces repatriation.",
                },
            },
            {"relationship": "spouse", "sex": "male", "full_name": "Sami Example"},
        ],
    }


def errors_of(schema: Schema, body: Any) -> Any:
    with pytest.raises(ValidationError) as caught:
        schema.load(body)
    return caught.value.messages


def messages_in(errors: Any) -> list[str]:
    if isinstance(errors, str):
        return [errors]
    if isinstance(errors, list):
        return [m for item in errors for m in messages_in(item)]
    return [m for value in errors.values() for m in messages_in(value)]


# --- intake: accepted ----------------------------------------------------------------------


def test_valid_intake_loads_with_types_and_defaults() -> None:
    data = IntakeIn().load(household())
    principal, child, spouse = data["members"]
    assert principal["relationship"] is Relationship.PRINCIPAL_APPLICANT
    assert principal["sex"] is Sex.FEMALE
    assert principal["date_of_birth"] == datetime.date(1990, 3, 4)
    assert child["mother"] == 0
    assert child["birth_registration"] is BirthRegistration.NOT_REGISTERED
    assert child["registration_risk"]["exposes_parent"] is True
    assert spouse["birth_year"] is None
    assert spouse["documents"] == []
    assert spouse["other_names"] == []
    assert spouse["mother"] is None
    assert data["specific_needs"] == ["SC-UC", "LP-RR"]


def test_office_and_needs_are_optional() -> None:
    body = household()
    del body["office"], body["specific_needs"]
    data = IntakeIn().load(body)
    assert "office" not in data
    assert data["specific_needs"] == []


def test_default_lists_are_not_shared() -> None:
    first = IntakeIn().load(household())["members"][2]
    first["documents"].append("x")
    assert IntakeIn().load(household())["members"][2]["documents"] == []


@pytest.mark.parametrize(
    ("field", "length"),
    [
        ("full_name", 200),
        ("place_of_birth", 200),
        ("address", 1000),
        ("narrative", 20000),
    ],
)
def test_strings_at_their_limit_are_accepted(field: str, length: int) -> None:
    body = household()
    body["members"][0][field] = "a" * length
    assert IntakeIn().load(body)["members"][0][field] == "a" * length


def test_fifty_members_are_accepted() -> None:
    body = household()
    body["members"] += [
        {"relationship": "other_relative", "sex": "unknown", "full_name": f"Relative {i}"}
        for i in range(47)
    ]
    assert len(IntakeIn().load(body)["members"]) == 50


def test_boundary_year_child_keeps_childrens_fields() -> None:
    body = household()
    body["members"][1]["birth_year"] = TODAY.year - 18
    body["members"][0].update(birth_year=TODAY.year - 40, date_of_birth=None)
    assert IntakeIn().load(body)["members"][1]["birth_registration"] == "not_registered"


# --- intake: refused, with the path of each message ----------------------------------------


def change(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


BAD_INTAKE = [
    # unknown fields, at every level
    (("nope",), 1, ("nope",)),
    (("members", 0, "nope"), 1, ("members", 0, "nope")),
    (("members", 0, "documents", 0, "nope"), 1, ("members", 0, "documents", 0, "nope")),
    (("members", 1, "registration_risk", "nope"), 1, ("members", 1, "registration_risk", "nope")),
    (("members", 0, "id"), str(uuid.uuid4()), ("members", 0, "id")),
    (("stage",), "vetting", ("stage",)),
    (("reference",), "0123456789P", ("reference",)),
    # a second principal applicant
    (("members", 2, "relationship"), "principal_applicant", ("members", 2, "relationship")),
    # mothers
    (("members", 1, "mother"), 2, ("members", 1, "mother")),  # male
    (("members", 1, "mother"), 1, ("members", 1, "mother")),  # the child itself
    (("members", 1, "mother"), 3, ("members", 1, "mother")),  # out of range
    (("members", 1, "mother"), 50, ("members", 1, "mother")),
    (("members", 1, "mother"), -1, ("members", 1, "mother")),
    (("members", 1, "mother"), "0", ("members", 1, "mother")),
    (("members", 1, "mother"), True, ("members", 1, "mother")),
    (("members", 1, "mother"), 0.0, ("members", 1, "mother")),
    # birth years and dates
    (("members", 1, "birth_year"), 2026, ("members", 1, "birth_year")),
    (("members", 1, "birth_year"), 1899, ("members", 1, "birth_year")),
    (("members", 1, "birth_year"), "2015", ("members", 1, "birth_year")),
    (("members", 1, "birth_year"), 2015.0, ("members", 1, "birth_year")),
    (("members", 1, "birth_year"), True, ("members", 1, "birth_year")),
    (("members", 1, "birth_year"), 10**40, ("members", 1, "birth_year")),
    (("members", 0, "date_of_birth"), "1991-03-04", ("members", 0, "date_of_birth")),
    (("members", 0, "date_of_birth"), "2025-06-02", ("members", 0, "date_of_birth")),
    (("members", 0, "date_of_birth"), "1899-12-31", ("members", 0, "date_of_birth")),
    (("members", 0, "date_of_birth"), "04/03/1990", ("members", 0, "date_of_birth")),
    # children's fields on adults
    (("members", 2, "birth_registration"), "unknown", ("members", 2, "birth_registration")),
    (("members", 2, "nationality_status"), "unknown", ("members", 2, "nationality_status")),
    (("members", 2, "mother"), 0, ("members", 2, "mother")),
    (
        ("members", 0, "registration_risk"),
        {"exposes_parent": False, "decision": "register_now", "reason": "n/a"},
        ("members", 0, "registration_risk"),
    ),
    # codes
    (("specific_needs", 1), "LP-XX", ("specific_needs", 1)),
    (("specific_needs", 1), "lp-rr", ("specific_needs", 1)),
    (("specific_needs", 1), "LP", ("specific_needs", 1)),
    (("specific_needs", 1), "SC-UC", ("specific_needs",)),  # repeated
    (("specific_needs",), "SC-UC", ("specific_needs",)),
    (("members", 0, "country_of_origin"), "syr", ("members", 0, "country_of_origin")),
    (("members", 0, "country_of_origin"), "SY", ("members", 0, "country_of_origin")),
    (("members", 0, "country_of_origin"), "XKX", ("members", 0, "country_of_origin")),
    (("members", 0, "sex"), "f", ("members", 0, "sex")),
    (("members", 0, "relationship"), "wife", ("members", 0, "relationship")),
    (("members", 0, "documents", 0, "type"), "visa", ("members", 0, "documents", 0, "type")),
    (("office",), "AMM-01", ("office",)),
    (("office",), "A", ("office",)),
    (("office",), "X" * 33, ("office",)),
    (
        ("members", 1, "registration_risk", "decision"),
        "maybe",
        ("members", 1, "registration_risk", "decision"),
    ),
    (
        ("members", 1, "registration_risk", "exposes_parent"),
        "yes",
        ("members", 1, "registration_risk", "exposes_parent"),
    ),
    (
        ("members", 1, "registration_risk", "exposes_parent"),
        1,
        ("members", 1, "registration_risk", "exposes_parent"),
    ),
    # over-long strings
    (("members", 0, "full_name"), "a" * 201, ("members", 0, "full_name")),
    (("members", 0, "other_names", 0), "a" * 201, ("members", 0, "other_names", 0)),
    (("members", 0, "place_of_birth"), "a" * 201, ("members", 0, "place_of_birth")),
    (("members", 0, "phone"), "1" * 41, ("members", 0, "phone")),
    (("members", 0, "address"), "a" * 1001, ("members", 0, "address")),
    (("members", 0, "narrative"), "a" * 20001, ("members", 0, "narrative")),
    (
        ("members", 0, "documents", 0, "number"),
        "1" * 65,
        ("members", 0, "documents", 0, "number"),
    ),
    (
        ("members", 1, "registration_risk", "reason"),
        "a" * 2001,
        ("members", 1, "registration_risk", "reason"),
    ),
    (("members", 0, "other_names"), ["a"] * 21, ("members", 0, "other_names")),
    (
        ("members", 0, "documents"),
        [{"type": "other", "number": "1"}] * 21,
        ("members", 0, "documents"),
    ),
    # empty or blank where a value is required
    (("members", 0, "full_name"), "", ("members", 0, "full_name")),
    (("members", 0, "full_name"), "   ", ("members", 0, "full_name")),
    (("members", 0, "full_name"), None, ("members", 0, "full_name")),
    (("members", 0, "documents", 0, "number"), "", ("members", 0, "documents", 0, "number")),
    (("members", 0, "phone"), "", ("members", 0, "phone")),
    (("members", 0, "narrative"), "\n\n", ("members", 0, "narrative")),
    (
        ("members", 1, "registration_risk", "reason"),
        " ",
        ("members", 1, "registration_risk", "reason"),
    ),
    (("members", 0, "other_names", 0), "", ("members", 0, "other_names", 0)),
    # bad characters and shapes
    (("members", 0, "full_name"), "Amina\x00", ("members", 0, "full_name")),
    (("members", 0, "full_name"), "Amina\nExample", ("members", 0, "full_name")),
    (("members", 0, "full_name"), "Amina\ud800", ("members", 0, "full_name")),
    (("members", 0, "narrative"), "bell\x07", ("members", 0, "narrative")),
    (("members", 0, "phone"), "call me", ("members", 0, "phone")),
    (("members", 0, "phone"), "+-", ("members", 0, "phone")),
    (("members", 0, "full_name"), 42, ("members", 0, "full_name")),
    (("members", 0, "documents"), {"type": "passport"}, ("members", 0, "documents")),
    (("members", 0, "documents", 0), "P0000000", ("members", 0, "documents", 0)),
    (("members", 0), "Amina", ("members", 0)),
    (("members",), [], ("members",)),
    (("members",), {}, ("members",)),
]


@pytest.mark.parametrize(("path", "value", "error_path"), BAD_INTAKE)
def test_bad_intake_is_refused_at_its_field(
    path: tuple[Any, ...], value: Any, error_path: tuple[Any, ...]
) -> None:
    errors = errors_of(IntakeIn(), change(household(), path, value))
    found = errors
    for key in error_path:
        assert key in found, (error_path, errors)
        found = found[key]
    assert found


@pytest.mark.parametrize("field", ["relationship", "sex"], ids=["relationship", "sex"])
def test_required_member_fields(field: str) -> None:
    body = household()
    del body["members"][2][field]
    assert errors_of(IntakeIn(), body) == {
        "members": {2: {field: ["Missing data for required field."]}}
    }


def test_full_name_is_required_unless_unnamed() -> None:
    body = household()
    del body["members"][2]["full_name"]
    assert errors_of(IntakeIn(), body) == {"members": {2: {"full_name": [rules.NAME_REQUIRED]}}}


def test_members_are_required() -> None:
    body = household()
    del body["members"]
    assert "members" in errors_of(IntakeIn(), body)


def test_no_principal_is_a_list_level_error() -> None:
    body = household()
    body["members"][0]["relationship"] = "parent"
    errors = errors_of(IntakeIn(), body)
    assert errors == {"members": {"_schema": [rules.NO_PRINCIPAL]}}


def test_second_principal_message() -> None:
    body = change(household(), ("members", 2, "relationship"), "principal_applicant")
    assert errors_of(IntakeIn(), body) == {
        "members": {2: {"relationship": [rules.SECOND_PRINCIPAL]}}
    }


def test_mother_messages() -> None:
    assert errors_of(IntakeIn(), change(household(), ("members", 1, "mother"), 2)) == {
        "members": {1: {"mother": [rules.MOTHER_NOT_FEMALE]}}
    }
    body = household()
    body["members"][0].update(birth_year=2006, date_of_birth=None)
    assert errors_of(IntakeIn(), body) == {"members": {1: {"mother": [rules.MOTHER_TOO_YOUNG]}}}


def test_child_field_without_age_is_refused() -> None:
    body = household()
    del body["members"][1]["birth_year"]
    errors = errors_of(IntakeIn(), body)
    assert errors["members"][1]["birth_registration"] == [rules.AGE_UNKNOWN]
    assert errors["members"][1]["mother"] == [rules.AGE_UNKNOWN]


def test_more_than_fifty_members_is_refused() -> None:
    body = household()
    body["members"] += [
        {"relationship": "other_relative", "sex": "unknown", "full_name": f"Relative {i}"}
        for i in range(48)
    ]
    assert errors_of(IntakeIn(), body) == {"members": ["Between 1 and 50 members."]}


@pytest.mark.parametrize("body", [None, [], "x", 1, [household()]])
def test_non_object_bodies_are_refused(body: Any) -> None:
    assert errors_of(IntakeIn(), body)


NO_ECHO = [
    ("members", 0, "full_name", "a" * 201 + MARKER),
    ("members", 0, "full_name", MARKER + "\x00"),
    ("members", 0, "phone", MARKER),
    ("members", 0, "country_of_origin", MARKER),
    ("members", 0, "date_of_birth", MARKER),
    ("members", 0, "sex", MARKER),
    ("members", 0, "birth_year", MARKER),
    ("members", 1, "mother", MARKER),
    ("specific_needs", 0, MARKER),
    ("office", MARKER),
    ("members", 0, "documents", 0, "number", MARKER * 10),
    ("members", 0, "documents", 0, "type", MARKER),
    ("members", 1, "registration_risk", "decision", MARKER),
    ("members", 1, "registration_risk", "exposes_parent", MARKER),
]


@pytest.mark.parametrize("case", NO_ECHO, ids=lambda case: "/".join(map(str, case[:-1])))
def test_messages_never_echo_the_value(case: tuple[Any, ...]) -> None:
    errors = errors_of(IntakeIn(), change(household(), case[:-1], case[-1]))
    assert MARKER not in json.dumps(errors)
    assert messages_in(errors)


def test_search_messages_never_echo_the_value() -> None:
    errors = errors_of(SearchIn(), {"full_name": MARKER * 20, "birth_year": 1990})
    assert MARKER not in json.dumps(errors)


# --- update ---------------------------------------------------------------------------------

A, B = str(uuid.uuid4()), str(uuid.uuid4())


def test_update_loads_partial_changes() -> None:
    body = {
        "specific_needs": ["SV-VA"],
        "members": {
            "add": [
                {
                    "relationship": "child",
                    "sex": "female",
                    "full_name": "New Child",
                    "birth_year": 2020,
                    "mother": A,
                }
            ],
            "change": [{"id": A, "phone": None, "narrative": "Updated."}],
            "remove": [B],
        },
    }
    data = CaseUpdateIn().load(body)
    assert data["members"]["add"][0]["mother"] == uuid.UUID(A)
    assert data["members"]["add"][0]["documents"] == []
    assert data["members"]["change"][0] == {
        "id": uuid.UUID(A),
        "phone": None,
        "narrative": "Updated.",
    }
    assert data["members"]["remove"] == [uuid.UUID(B)]
    assert CaseUpdateIn().load({"specific_needs": []}) == {"specific_needs": []}


BAD_UPDATE = [
    ({}, ("_schema",)),
    ({"stage": "vetting"}, ("stage",)),
    ({"office": "AMM-02"}, ("office",)),
    ({"specific_needs": None}, ("specific_needs",)),
    ({"specific_needs": ["XX-XX"]}, ("specific_needs", 0)),
    ({"members": {}}, ("members", "_schema")),
    ({"members": {"add": [], "change": [], "remove": []}}, ("members", "_schema")),
    ({"members": {"rename": []}}, ("members", "rename")),
    ({"members": {"change": [{"id": A}]}}, ("members", "change", 0, "_schema")),
    ({"members": {"change": [{"phone": None}]}}, ("members", "change", 0, "id")),
    ({"members": {"change": [{"id": "x", "phone": None}]}}, ("members", "change", 0, "id")),
    ({"members": {"change": [{"id": A, "nope": 1}]}}, ("members", "change", 0, "nope")),
    (
        {"members": {"change": [{"id": A, "full_name": None}]}},
        ("members", "change", 0, "full_name"),
    ),
    ({"members": {"change": [{"id": A, "full_name": ""}]}}, ("members", "change", 0, "full_name")),
    ({"members": {"change": [{"id": A, "mother": 0}]}}, ("members", "change", 0, "mother")),
    (
        {"members": {"change": [{"id": A, "birth_year": 1980, "mother": B}]}},
        ("members", "change", 0, "mother"),
    ),
    (
        {"members": {"change": [{"id": A, "birth_year": 1980, "date_of_birth": "1981-01-01"}]}},
        ("members", "change", 0, "date_of_birth"),
    ),
    (
        {"members": {"change": [{"id": A, "phone": None}, {"id": A, "address": None}]}},
        ("members", "change", 1, "id"),
    ),
    ({"members": {"change": [{"id": A, "phone": None}], "remove": [A]}}, ("members", "remove", 0)),
    ({"members": {"remove": [A, B, A]}}, ("members", "remove", 2)),
    ({"members": {"remove": ["not-a-uuid"]}}, ("members", "remove", 0)),
    (
        {"members": {"add": [{"relationship": "child", "sex": "male"}]}},
        ("members", "add", 0, "full_name"),
    ),
    (
        {
            "members": {
                "add": [{"relationship": "child", "sex": "male", "full_name": "X", "mother": 0}]
            }
        },
        ("members", "add", 0, "mother"),
    ),
    (
        {
            "members": {
                "add": [
                    {
                        "relationship": "spouse",
                        "sex": "male",
                        "full_name": "X",
                        "birth_year": 1970,
                        "nationality_status": "unknown",
                    }
                ]
            }
        },
        ("members", "add", 0, "nationality_status"),
    ),
    (
        {"members": {"add": [{"relationship": "child", "sex": "male", "full_name": "X", "z": 1}]}},
        ("members", "add", 0, "z"),
    ),
    ({"members": {"add": [{}] * 51}}, ("members", "add")),
]


@pytest.mark.parametrize(("body", "error_path"), BAD_UPDATE)
def test_bad_update_is_refused_at_its_field(
    body: dict[str, Any], error_path: tuple[Any, ...]
) -> None:
    errors = errors_of(CaseUpdateIn(), body)
    found = errors
    for key in error_path:
        assert key in found, (error_path, errors)
        found = found[key]
    assert found


# --- search ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"document_number": "P0000000"},
        {"document_number": "P0000000", "document_type": "passport"},
        {"full_name": "Amina Example", "birth_year": 1990},
    ],
)
def test_valid_searches(body: dict[str, Any]) -> None:
    assert set(SearchIn().load(body)) == set(body)


@pytest.mark.parametrize(
    ("body", "error_path"),
    [
        ({}, ("_schema",)),
        ({"document_number": "P1", "full_name": "A", "birth_year": 1990}, ("_schema",)),
        ({"document_type": "passport", "full_name": "A", "birth_year": 1990}, ("_schema",)),
        ({"document_type": "passport"}, ("document_number",)),
        ({"full_name": "Amina"}, ("birth_year",)),
        ({"birth_year": 1990}, ("full_name",)),
        ({"document_number": ""}, ("document_number",)),
        ({"document_number": "1" * 65}, ("document_number",)),
        ({"document_number": "P1", "document_type": "visa"}, ("document_type",)),
        ({"full_name": "A", "birth_year": 2030}, ("birth_year",)),
        ({"full_name": "a" * 201, "birth_year": 1990}, ("full_name",)),
        ({"full_name": None, "birth_year": 1990}, ("full_name",)),
        ({"reference": "0123456789P"}, ("reference",)),
    ],
)
def test_bad_searches(body: dict[str, Any], error_path: tuple[Any, ...]) -> None:
    errors = errors_of(SearchIn(), body)
    found = errors
    for key in error_path:
        assert key in found, (error_path, errors)
        found = found[key]


# --- output ---------------------------------------------------------------------------------


def test_case_out_dumps_a_full_case() -> None:
    member_id, mother_id = uuid.uuid4(), uuid.uuid4()
    now = datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.UTC)
    loaded = IntakeIn().load(household())["members"][1]
    case = {
        "reference": "0123456789P",
        "office": "amm-01",
        "stage": "intake",
        "resettlement_stage": "not_considered",
        "specific_needs": ["SC-UC"],
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "members": [{**loaded, "id": member_id, "mother": mother_id}],
        "possible_duplicates": [
            {"reference": "ABCDEFGHJKQ", "score": 0.93, "matched_on": ["name_variant"]}
        ],
        "internal_secret": "never dumped",
    }
    dumped = CaseOut().dump(case)
    assert "internal_secret" not in dumped
    assert dumped["members"][0]["id"] == str(member_id)
    assert dumped["members"][0]["mother"] == str(mother_id)
    assert dumped["members"][0]["sex"] == "male"
    assert dumped["members"][0]["birth_registration"] == "not_registered"
    assert dumped["members"][0]["registration_risk"]["decision"] == "defer"
    assert dumped["created_at"].startswith("2025-06-01T12:00:00")
    assert dumped["possible_duplicates"] == [
        {"reference": "ABCDEFGHJKQ", "score": 0.93, "matched_on": ["name_variant"]}
    ]
    json.dumps(dumped)


def test_member_out_has_every_member_field() -> None:
    member_fields = set(schemas.MemberIn().fields)
    assert set(MemberOut().fields) == member_fields | {"id"}


def test_summary_and_history_out() -> None:
    summary = CaseSummaryOut().dump(
        {
            "reference": "0123456789P",
            "office": "amm-01",
            "stage": "vetting",
            "resettlement_stage": "identified",
            "member_count": 3,
            "specific_needs": [],
            "members": ["not in a summary"],
        }
    )
    assert set(summary) == {
        "reference",
        "office",
        "stage",
        "resettlement_stage",
        "member_count",
        "specific_needs",
    }
    at = datetime.datetime(2025, 6, 1, tzinfo=datetime.UTC)
    entry = HistoryEntryOut().dump(
        {"at": at, "actor": "u-1", "action": "case.update", "fields": ["phone"]}
    )
    assert entry == {
        "at": at.isoformat(),
        "actor": "u-1",
        "action": "case.update",
        "fields": ["phone"],
    }


def test_every_input_schema_refuses_unknown_fields() -> None:
    for name in dir(schemas):
        value = getattr(schemas, name)
        if isinstance(value, type) and issubclass(value, Schema) and name.endswith("In"):
            assert value().unknown == "raise", name


# --- fuzzing --------------------------------------------------------------------------------

NASTY = st.sampled_from(
    ["", " ", "\x00", "\ud800", "0", "-1", "null", "principal_applicant", "SC-UC", "1990-01-01"]
) | st.integers(min_value=190, max_value=20_010).map(lambda n: "a" * n)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | NASTY,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=10) | st.sampled_from(["members", "mother"]), children, max_size=4
        )
    ),
    max_leaves=20,
)
MEMBER_KEYS = list(schemas.MemberIn().fields)


@st.composite
def mutated_household(draw: st.DrawFn) -> Any:
    """A valid household with a few values replaced by junk, removed or added."""
    body = copy.deepcopy(household())
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        target: Any = body
        members = body.get("members")
        if draw(st.booleans()) and isinstance(members, list) and members:
            target = members[draw(st.integers(min_value=0, max_value=len(members) - 1))]
            if not isinstance(target, dict):
                continue
        key = draw(st.sampled_from([*MEMBER_KEYS, "office", "specific_needs", "members", "x"]))
        action = draw(st.sampled_from(["replace", "delete"]))
        if action == "delete":
            target.pop(key, None)
        else:
            target[key] = draw(JSON)
    return body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(JSON, mutated_household()))
def test_junk_intake_raises_only_validation_errors(body: Any) -> None:
    try:
        data = IntakeIn().load(body)
    except ValidationError as error:
        messages = error.messages
    else:
        assert 1 <= len(data["members"]) <= rules.MAX_MEMBERS
        return
    assert messages_in(messages)


@settings(max_examples=150, deadline=None)
@given(JSON)
def test_junk_update_and_search_raise_only_validation_errors(body: Any) -> None:
    for schema in (CaseUpdateIn(), SearchIn()):
        with contextlib.suppress(ValidationError):
            schema.load(body)


def test_openapi_document_carries_limits_enums_and_descriptions() -> None:
    from apispec import APISpec
    from apispec.ext.marshmallow import MarshmallowPlugin

    # CaseOut names the workflow's block by name (workflow sits above cases): the app
    # imports it; a run of this test alone must too.
    importlib.import_module("casework.workflow.schemas")
    spec = APISpec("casework", "v1", "3.0.3", plugins=[MarshmallowPlugin()])
    for schema in (IntakeIn, CaseUpdateIn, SearchIn, CaseOut, CaseSummaryOut, HistoryEntryOut):
        spec.components.schema(schema.__name__, schema=schema)
    components = spec.to_dict()["components"]["schemas"]
    member = components["MemberIn"]["properties"]
    assert member["full_name"]["maxLength"] == 200
    assert member["narrative"]["maxLength"] == 20000
    assert member["sex"]["enum"] == ["female", "male", "other", "unknown"]
    assert member["mother"]["maximum"] == rules.MAX_MEMBERS - 1
    assert "description" in member["registration_risk"] or "allOf" in member["registration_risk"]
    assert components["IntakeIn"]["properties"]["members"]["maxItems"] == rules.MAX_MEMBERS
    assert components["IntakeIn"]["required"] == ["members"]
    assert "add" in components["MembersPatchIn"]["properties"]
    assert components["HistoryEntryOut"]["properties"]["fields"]["type"] == "array"
    assert components["MemberOut"]["properties"]["birth_registration"]["nullable"] is True
