"""Property tests of the pure rules: an interview's consistency and a check's result."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from casework.errors import ValidationFailed
from casework.vetting.schemas import result_errors
from casework.vetting.service import INTERVIEW_DATA, _merge
from casework.workflow.codes import CHECK_STATUSES, CheckType, MedicalExamination

languages = st.sampled_from([None, "ar", "ps", "fa-AF"])
states = st.fixed_dictionaries(
    {
        "members": st.just(["m"]),
        "scheduled_for": st.sampled_from([None, datetime(2030, 1, 1, tzinfo=UTC)]),
        "conducted_on": st.sampled_from([None, date(2025, 1, 1)]),
        "interpreter_used": st.booleans(),
        "interpreter_language": languages,
        "notes": st.sampled_from([None, "n"]),
    }
)
changes = st.dictionaries(
    st.sampled_from(["scheduled_for", "interpreter_used", "interpreter_language", "notes"]),
    st.one_of(st.none(), st.booleans(), languages, st.just(datetime(2031, 1, 1, tzinfo=UTC))),
)


@given(states, changes)
def test_a_merged_interview_is_consistent_or_refused(
    state: dict[str, Any], change: dict[str, Any]
) -> None:
    refused: dict[str, Any] = {}
    try:
        merged = _merge(state, change)
    except ValidationFailed as error:
        refused = error.extra["errors"]["json"]
    if refused:
        assert set(refused) <= {"interpreter_language", "scheduled_for"}
        return
    assert set(merged) == set(INTERVIEW_DATA)
    assert merged["scheduled_for"] is not None or merged["conducted_on"] is not None
    assert (merged["interpreter_language"] is not None) == bool(merged["interpreter_used"])
    for name, value in change.items():
        if name != "interpreter_language" or merged["interpreter_used"]:
            assert merged[name] == value


@given(
    st.sampled_from(list(CheckType)),
    st.text(max_size=20) | st.sampled_from([s.value for e in CHECK_STATUSES.values() for s in e]),
    st.sampled_from([None, True, False]),
)
def test_a_check_result_is_accepted_only_with_its_own_statuses(
    check: CheckType, status: str, fit: bool | None
) -> None:
    errors = result_errors(check, {"status": status, "fit_to_travel": fit})
    valid_status = status in {s.value for s in CHECK_STATUSES[check]}
    assert ("status" in errors) is not valid_status
    medical = check is CheckType.MEDICAL_EXAMINATION
    completed = medical and status == MedicalExamination.COMPLETED
    if completed:
        assert ("fit_to_travel" in errors) is (fit is None)
    elif fit is not None and (not medical or status == MedicalExamination.PENDING):
        assert "fit_to_travel" in errors
