"""Consent evaluation: purpose, recipient, validity window, withdrawal at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casework.workflow.consent import (
    PARTNER_PURPOSES,
    ConsentPurpose,
    ConsentRecord,
    consented_fields,
    has_valid_consent,
    valid_records,
)
from tests.workflow.helpers import DESTINATION, NOW, PARTNER, consent

SECOND = timedelta(seconds=1)


def test_a_current_record_for_the_purpose_and_recipient_is_valid() -> None:
    assert has_valid_consent([consent()], ConsentPurpose.RESETTLEMENT_SUBMISSION, DESTINATION, NOW)


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (consent(ConsentPurpose.DATA_SHARING), "another purpose"),
        (consent(recipient="SWE"), "another recipient"),
        (consent(withdrawn_at=NOW - timedelta(days=1)), "withdrawn"),
        (consent(withdrawn_at=NOW + timedelta(days=1)), "withdrawal dated ahead still counts"),
        (consent(given_at=NOW - timedelta(days=30), expires_at=NOW), "expires at this instant"),
        (consent(given_at=NOW + SECOND, expires_at=None), "given in the future"),
    ],
)
def test_records_that_do_not_allow_it(record: ConsentRecord, why: str) -> None:
    purpose = ConsentPurpose.RESETTLEMENT_SUBMISSION
    assert not has_valid_consent([record], purpose, DESTINATION, NOW), why


def test_the_validity_window_includes_its_start_and_excludes_its_end() -> None:
    record = consent(given_at=NOW, expires_at=NOW + timedelta(days=1))
    purpose = ConsentPurpose.RESETTLEMENT_SUBMISSION
    assert record.is_valid(purpose, DESTINATION, NOW)
    assert record.is_valid(purpose, DESTINATION, NOW + timedelta(days=1) - SECOND)
    assert not record.is_valid(purpose, DESTINATION, NOW + timedelta(days=1))
    assert not record.is_valid(purpose, DESTINATION, NOW - SECOND)


def test_times_in_other_zones_compare_as_instants() -> None:
    record = consent(given_at=NOW, expires_at=NOW + timedelta(hours=1))
    in_amman = (NOW + timedelta(minutes=30)).astimezone(timezone(timedelta(hours=3)))
    assert record.is_valid(ConsentPurpose.RESETTLEMENT_SUBMISSION, DESTINATION, in_amman)


def test_one_valid_record_among_void_ones_is_enough() -> None:
    records = [consent(withdrawn_at=NOW), consent(recipient="SWE"), consent()]
    assert has_valid_consent(records, ConsentPurpose.RESETTLEMENT_SUBMISSION, DESTINATION, NOW)
    assert valid_records(records, [ConsentPurpose.RESETTLEMENT_SUBMISSION], DESTINATION, NOW) == [
        records[2]
    ]


def test_no_records_no_consent() -> None:
    assert not has_valid_consent([], ConsentPurpose.REFERRAL, PARTNER, NOW)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"recipients": frozenset()}, "at least one recipient"),
        ({"recipients": frozenset({""})}, "at least one recipient"),
        ({"given_by": ""}, "given by a member"),
        ({"given_at": datetime(2025, 1, 1)}, "given_at must be a timezone-aware"),
        ({"expires_at": datetime(2026, 1, 1)}, "expires_at must be"),
        ({"withdrawn_at": datetime(2026, 1, 1)}, "withdrawn_at must be"),
        ({"expires_at": NOW - timedelta(days=10)}, "expire after it is given"),
        ({"purpose": "referral"}, "purpose must be a ConsentPurpose"),
    ],
)
def test_malformed_records_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        consent(**changes)


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="now must be"):
        has_valid_consent([consent()], ConsentPurpose.REFERRAL, PARTNER, datetime(2025, 1, 1))


def test_consented_fields_are_the_union_over_valid_partner_records() -> None:
    records = [
        consent(ConsentPurpose.REFERRAL, PARTNER, fields=frozenset({"full_name", "phone"})),
        consent(ConsentPurpose.DATA_SHARING, PARTNER, fields=frozenset({"specific_needs"})),
        consent(ConsentPurpose.REFERRAL, PARTNER, fields=frozenset({"address"}), withdrawn_at=NOW),
        consent(ConsentPurpose.REFERRAL, "PARTNER-B", fields=frozenset({"narrative"})),
        consent(ConsentPurpose.RESETTLEMENT_SUBMISSION, PARTNER, fields=frozenset({"documents"})),
    ]
    assert consented_fields(records, PARTNER, NOW) == {"full_name", "phone", "specific_needs"}
    resettlement = consented_fields(
        records, PARTNER, NOW, purposes=[ConsentPurpose.RESETTLEMENT_SUBMISSION]
    )
    assert resettlement == {"documents"}
    assert consented_fields([], PARTNER, NOW) == frozenset()


def test_partner_purposes_are_referral_and_data_sharing() -> None:
    assert set(PARTNER_PURPOSES) == {ConsentPurpose.REFERRAL, ConsentPurpose.DATA_SHARING}


# --- properties ---------------------------------------------------------------------------

RECIPIENTS = ("PARTNER-A", "PARTNER-B", "CAN")
offsets = st.integers(-100, 100).map(lambda hours: NOW + timedelta(hours=hours))


@st.composite
def records(draw: st.DrawFn) -> ConsentRecord:
    given = draw(offsets)
    expires = draw(st.none() | st.integers(1, 200).map(lambda h: given + timedelta(hours=h)))
    return ConsentRecord(
        purpose=draw(st.sampled_from(ConsentPurpose)),
        recipients=frozenset(draw(st.sets(st.sampled_from(RECIPIENTS), min_size=1))),
        given_by="member-1",
        given_at=given,
        expires_at=expires,
        withdrawn_at=draw(st.none() | offsets),
    )


@settings(max_examples=120, deadline=None)
@given(
    st.lists(records(), max_size=6),
    st.sampled_from(ConsentPurpose),
    st.sampled_from(RECIPIENTS),
    offsets,
)
def test_consent_follows_its_definition(
    found: list[ConsentRecord], purpose: ConsentPurpose, recipient: str, now: datetime
) -> None:
    expected = any(
        r.purpose == purpose
        and recipient in r.recipients
        and r.withdrawn_at is None
        and r.given_at <= now
        and (r.expires_at is None or now < r.expires_at)
        for r in found
    )
    assert has_valid_consent(found, purpose, recipient, now) is expected


@settings(max_examples=100, deadline=None)
@given(st.lists(records(), max_size=6), st.sampled_from(RECIPIENTS), offsets)
def test_withdrawn_records_never_count(
    found: list[ConsentRecord], recipient: str, now: datetime
) -> None:
    withdrawn = [
        ConsentRecord(
            r.purpose, r.recipients, r.given_by, r.given_at, r.expires_at, now.astimezone(UTC)
        )
        for r in found
    ]
    for purpose in ConsentPurpose:
        assert not has_valid_consent(withdrawn, purpose, recipient, now)
