from __future__ import annotations

import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from casework.concurrency import etag_for, require_if_match
from casework.errors import PreconditionFailed, PreconditionRequired, ValidationFailed
from casework.pagination import PageArgs, decode_cursor, encode_cursor, page_size


def test_if_match_required(app: Flask) -> None:
    with app.test_request_context("/"), pytest.raises(PreconditionRequired):
        require_if_match(3)


def test_stale_if_match_fails(app: Flask) -> None:
    with (
        app.test_request_context("/", headers={"If-Match": etag_for(2)}),
        pytest.raises(PreconditionFailed),
    ):
        require_if_match(3)


@pytest.mark.parametrize("header", ['"v3"', 'W/"v3"', '"v1", "v3"'])
def test_current_if_match_passes(app: Flask, header: str) -> None:
    with app.test_request_context("/", headers={"If-Match": header}):
        require_if_match(3)


# Positions are codes, timestamps and ids: never NUL, which PostgreSQL cannot compare.
NO_NUL = st.characters(exclude_characters="\x00")


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(NO_NUL, max_size=8),
        st.integers() | st.text(NO_NUL, max_size=20),
        max_size=4,
    )
)
def test_cursor_round_trip(position: dict[str, object]) -> None:
    assert decode_cursor(encode_cursor(position)) == position


@pytest.mark.parametrize("position", [{"after": "a\x00"}, {"a\x00": 1}])
def test_a_cursor_holding_nul_is_refused(position: dict[str, object]) -> None:
    with pytest.raises(ValidationFailed):
        decode_cursor(encode_cursor(position))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_junk_cursor_is_a_validation_error(junk: str) -> None:
    try:
        value = decode_cursor(junk)
    except ValidationFailed:
        return
    assert isinstance(value, dict)


def test_page_limits(app: Flask) -> None:
    with app.test_request_context("/"):
        assert page_size(None) == app.config["CASEWORK"]["api_default_page_size"]
        errors = PageArgs().validate({"limit": app.config["CASEWORK"]["api_max_page_size"] + 1})
        assert "limit" in errors
        assert PageArgs().validate({"limit": 0}) == {
            "limit": ["Must be greater than or equal to 1."]
        }
