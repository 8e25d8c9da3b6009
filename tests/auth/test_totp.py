import base64
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from casework.auth.totp import (
    TotpError,
    TotpFailure,
    new_totp_secret,
    provisioning_uri,
    time_step,
    verify_totp,
)

# RFC 6238 appendix B: the SHA-1 seed "12345678901234567890", codes cut to 6 digits.
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC_VECTORS = [
    (59, "287082"),
    (1111111109, "081804"),
    (1111111111, "050471"),
    (1234567890, "005924"),
    (2000000000, "279037"),
    (20000000000, "353130"),
]
# Steps between 2001 and 2286: realistic clocks.
STEPS = st.integers(min_value=33_000_000, max_value=10_000_000_000 // 30)
SECRETS = st.binary(min_size=20, max_size=20).map(lambda raw: base64.b32encode(raw).decode())


def at(unix_seconds: float) -> datetime:
    return datetime.fromtimestamp(unix_seconds, tz=UTC)


def code_for(secret: str, step: int) -> str:
    """An independent oracle: pyotp's own code for that step."""
    return pyotp.TOTP(secret).at(step * 30)


@pytest.mark.parametrize(("unix_seconds", "code"), RFC_VECTORS)
def test_rfc6238_vectors(unix_seconds: int, code: str) -> None:
    assert verify_totp(RFC_SECRET, code, at(unix_seconds), None) == unix_seconds // 30


def test_secret_is_160_bits_of_unpadded_base32() -> None:
    secret = new_totp_secret()
    assert len(secret) == 32
    assert "=" not in secret
    assert len(base64.b32decode(secret)) == 20
    assert len({new_totp_secret() for _ in range(100)}) == 100


def test_provisioning_uri_names_issuer_account_and_secret() -> None:
    secret = new_totp_secret()
    parts = urlsplit(provisioning_uri(secret, "amira.haddad"))
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/casework:amira.haddad"
    query = parse_qs(parts.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == ["casework"]


def test_provisioning_uri_takes_another_issuer() -> None:
    uri = provisioning_uri(new_totp_secret(), "amira", issuer="NGO Field Office")
    assert parse_qs(urlsplit(uri).query)["issuer"] == ["NGO Field Office"]


@settings(max_examples=100, deadline=None)
@given(
    secret=SECRETS,
    step=STEPS,
    drift=st.integers(min_value=-1, max_value=1),
    second=st.floats(min_value=0, max_value=29.999),
)
def test_codes_within_one_step_are_accepted(
    secret: str, step: int, drift: int, second: float
) -> None:
    now = at((step + drift) * 30 + second)
    matched = verify_totp(secret, code_for(secret, step), now, None)
    # Another step in the window may share the code by chance (10^-6); it must match too.
    assert matched == step or code_for(secret, matched) == code_for(secret, step)
    assert abs(matched - time_step(now)) <= 1


@settings(max_examples=100, deadline=None)
@given(
    secret=SECRETS,
    step=STEPS,
    drift=st.one_of(st.integers(min_value=2, max_value=1000), st.integers(-1000, -2)),
)
def test_codes_outside_the_window_are_refused(secret: str, step: int, drift: int) -> None:
    current = step + drift
    code = code_for(secret, step)
    assume(all(code_for(secret, s) != code for s in (current - 1, current, current + 1)))
    with pytest.raises(TotpError) as caught:
        verify_totp(secret, code, at(current * 30 + 15), None)
    assert caught.value.failure is TotpFailure.WRONG


@settings(max_examples=60, deadline=None)
@given(secret=SECRETS, step=STEPS, later=st.integers(min_value=0, max_value=1))
def test_a_used_step_and_earlier_ones_are_refused(secret: str, step: int, later: int) -> None:
    now = at(step * 30 + 10)
    code = code_for(secret, step)
    assume(code_for(secret, step + 1) != code)
    used = verify_totp(secret, code, now, None)
    assert used == step
    for last_used in (used + later, used + 5):
        with pytest.raises(TotpError) as caught:
            verify_totp(secret, code, now, last_used)
        assert caught.value.failure is TotpFailure.REPLAYED
    assert verify_totp(secret, code, now, used - 1) == step


def test_next_code_is_accepted_after_a_used_one() -> None:
    secret = new_totp_secret()
    step = 60_000_000
    used = verify_totp(secret, code_for(secret, step), at(step * 30), None)
    later = verify_totp(secret, code_for(secret, step + 1), at(step * 30 + 31), used)
    assert later == step + 1


def test_wrong_code_is_refused_with_one_message() -> None:
    now = at(1_700_000_000)
    step = time_step(now)
    wrong = next(
        candidate
        for candidate in ("000000", "111111", "222222")
        if candidate not in {code_for(RFC_SECRET, s) for s in (step - 1, step, step + 1)}
    )
    with pytest.raises(TotpError) as caught:
        verify_totp(RFC_SECRET, wrong, now, None)
    assert caught.value.failure is TotpFailure.WRONG
    assert str(caught.value) == "one-time code refused"


def test_spaces_that_apps_display_are_ignored() -> None:
    code = code_for(RFC_SECRET, 1234567890 // 30)
    spaced = f"{code[:3]} {code[3:]}"
    assert verify_totp(RFC_SECRET, spaced, at(1234567890), None) == 1234567890 // 30


@settings(max_examples=150, deadline=None)
@given(code=st.text(max_size=12))
def test_malformed_codes_are_refused_before_any_comparison(code: str) -> None:
    digits = code.replace(" ", "")
    assume(not (len(digits) == 6 and digits.isascii() and digits.isdigit()))
    with pytest.raises(TotpError) as caught:
        verify_totp(RFC_SECRET, code, at(1_700_000_000), None)
    assert caught.value.failure is TotpFailure.MALFORMED


@pytest.mark.parametrize("code", ["１２３４５６", "١٢٣٤٥٦", "12345", "1234567", "12-3456"])  # noqa: RUF001
def test_non_ascii_or_wrong_length_digits_are_malformed(code: str) -> None:
    with pytest.raises(TotpError) as caught:
        verify_totp(RFC_SECRET, code, at(1_700_000_000), None)
    assert caught.value.failure is TotpFailure.MALFORMED


def test_time_step_is_the_same_instant_in_any_zone() -> None:
    utc = at(1_700_000_000)
    elsewhere = utc.astimezone(timezone(timedelta(hours=3)))
    assert time_step(utc) == time_step(elsewhere) == 1_700_000_000 // 30


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_totp(RFC_SECRET, "123456", datetime(2025, 1, 1), None)


@pytest.mark.parametrize("secret", ["not base32!", "GEZDGNBV", ""])
def test_unusable_secret_raises_without_echoing_it(secret: str) -> None:
    with pytest.raises(ValueError, match="TOTP secret") as caught:
        verify_totp(secret, "123456", at(1_700_000_000), None)
    assert str(caught.value) == "TOTP secret is not base32 of at least 112 bits"
