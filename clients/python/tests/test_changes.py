"""``--set FIELD=VALUE`` parsing and the local application of update bodies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from casework_sync.changes import apply_update, corrected, parse_assignment, update_body


def test_assignments_become_one_update_body() -> None:
    body = update_body(
        [
            parse_assignment("specific_needs=SM-MI, ER"),
            parse_assignment("members.m1.phone=+962 7 0000"),
            parse_assignment("members.m1.birth_year=1990"),
            parse_assignment("members.m2.address=-"),
        ]
    )
    assert body == {
        "specific_needs": ["SM-MI", "ER"],
        "members": {
            "change": [
                {"id": "m1", "phone": "+962 7 0000", "birth_year": 1990},
                {"id": "m2", "address": None},
            ]
        },
    }


@pytest.mark.parametrize("text", ["no-equals", "=x", "members.m1=3", "a.b=1"])
def test_malformed_assignments_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"FIELD|field|empty"):
        update_body([parse_assignment(text)])


def test_json_values_are_kept_as_json() -> None:
    assert parse_assignment('specific_needs=["A","B"]') == (["specific_needs"], ["A", "B"])
    assert parse_assignment("x=null") == (["x"], None)


def test_member_add_change_remove() -> None:
    case = {"members": [{"id": "a", "full_name": "A"}, {"id": "b", "full_name": "B"}]}
    result = apply_update(
        case,
        {
            "members": {
                "add": [{"client_ref": "c", "full_name": "C"}],
                "change": [{"id": "a", "phone": "1"}],
                "remove": ["b"],
            }
        },
        {},
    )
    assert [m["id"] for m in result["members"]] == ["a", "c"]
    assert result["members"][0]["phone"] == "1"
    assert case["members"][0] == {"id": "a", "full_name": "A"}  # input untouched


@given(st.lists(st.sampled_from(["SM-MI", "ER", "DS-BD", "LP-ND"]), unique=True))
def test_specific_needs_replace_the_list(needs: list[str]) -> None:
    assert apply_update({"specific_needs": ["OLD"]}, {"specific_needs": needs}, {}) == {
        "specific_needs": needs,
        "members": [],
    }


def test_a_rejected_body_is_corrected_by_set_and_drop() -> None:
    update = {
        "op": "update",
        "changes": {
            "specific_needs": ["BAD"],
            "members": {
                "change": [{"id": "m1", "phone": "x", "sex": "zz"}],
                "add": [{"client_ref": "c9", "sex": "male", "full_name": "K"}],
            },
        },
    }
    fixed = corrected(
        update,
        [parse_assignment("members.m1.sex=female")],
        [["specific_needs"], ["members", "m1", "phone"], ["members", "c9"]],
    )
    assert fixed == {"members": {"change": [{"id": "m1", "sex": "female"}]}}
    assert update["changes"]["specific_needs"] == ["BAD"]  # the stored body is left as it was
    with pytest.raises(ValueError, match="nothing left"):
        corrected(
            {"op": "update", "changes": {"specific_needs": ["BAD"]}}, [], [["specific_needs"]]
        )
    with pytest.raises(ValueError, match="no member"):
        corrected(update, [], [["members", "m7"]])


def test_an_intake_names_members_by_position_or_offline_ref() -> None:
    create = {
        "op": "create",
        "changes": {
            "client_ref": "case-1",
            "members": [
                {"client_ref": "a", "sex": "zz", "full_name": "A"},
                {"client_ref": "b", "sex": "male", "full_name": "B", "phone": "1"},
            ],
        },
    }
    fixed = corrected(
        create,
        [parse_assignment("members.0.sex=female"), parse_assignment("specific_needs=ER")],
        [["members", "b", "phone"]],
    )
    assert fixed["members"] == [
        {"client_ref": "a", "sex": "female", "full_name": "A"},
        {"client_ref": "b", "sex": "male", "full_name": "B"},
    ]
    assert fixed["specific_needs"] == ["ER"]
    assert corrected(create, [], [["members", "1"]])["members"][0]["client_ref"] == "a"
    with pytest.raises(ValueError, match="no member"):
        corrected(create, [parse_assignment("members.7.sex=female")], [])
