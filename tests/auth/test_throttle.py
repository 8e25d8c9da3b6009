from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casework.auth.throttle import ThrottleKeys, ThrottlePolicy

POLICY = ThrottlePolicy()
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SECRET = bytes(range(32))

FAILURES = st.integers(min_value=0, max_value=10_000)
MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
POLICIES = st.builds(
    ThrottlePolicy,
    max_failures=st.integers(min_value=1, max_value=20),
    window=st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=1)),
    base_delay=st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(minutes=10)),
    max_delay=st.timedeltas(min_value=timedelta(minutes=10), max_value=timedelta(days=2)),
)


def test_defaults_match_the_documented_policy() -> None:
    assert POLICY.max_failures == 5
    assert POLICY.window == timedelta(minutes=15)
    assert POLICY.base_delay == timedelta(seconds=30)
    assert POLICY.max_delay == timedelta(hours=1)


@pytest.mark.parametrize(
    ("failures", "seconds"),
    [(0, 0), (4, 0), (5, 30), (6, 60), (7, 120), (11, 1920), (12, 3600), (13, 3600), (10**9, 3600)],
)
def test_lock_doubles_from_the_fifth_failure_up_to_an_hour(failures: int, seconds: int) -> None:
    assert POLICY.lock_duration(failures) == timedelta(seconds=seconds)


def test_locked_until_and_retry_after() -> None:
    assert POLICY.locked_until(4, T0) is None
    assert POLICY.locked_until(6, T0) == T0 + timedelta(seconds=60)
    assert POLICY.retry_after_seconds(6, T0, T0) == 60
    assert POLICY.retry_after_seconds(6, T0, T0 + timedelta(seconds=59.2)) == 1
    assert POLICY.retry_after_seconds(6, T0, T0 + timedelta(seconds=60)) == 0
    assert POLICY.retry_after_seconds(4, T0, T0) == 0


@settings(max_examples=200, deadline=None)
@given(policy=POLICIES, failures=FAILURES)
def test_lock_grows_monotonically_and_stays_within_bounds(
    policy: ThrottlePolicy, failures: int
) -> None:
    now = policy.lock_duration(failures)
    after = policy.lock_duration(failures + 1)
    assert timedelta(0) <= now <= after <= policy.max_delay
    if failures < policy.max_failures:
        assert now == timedelta(0)
    else:
        assert now >= policy.base_delay
        assert after in (2 * now, policy.max_delay)


@settings(max_examples=200, deadline=None)
@given(
    policy=POLICIES,
    failures=FAILURES,
    last=MOMENTS,
    elapsed=st.timedeltas(timedelta(0), timedelta(days=3)),
)
def test_retry_after_never_lets_a_client_in_early(
    policy: ThrottlePolicy, failures: int, last: datetime, elapsed: timedelta
) -> None:
    now = last + elapsed
    wait = policy.retry_after_seconds(failures, last, now)
    until = policy.locked_until(failures, last)
    if until is None or until <= now:
        assert wait == 0
    else:
        assert wait > 0
        assert now + timedelta(seconds=wait) >= until
        assert now + timedelta(seconds=wait - 1) < until


def test_counter_restarts_after_a_quiet_window() -> None:
    assert POLICY.failures_after(0, None, T0) == 1
    assert POLICY.failures_after(3, T0, T0 + timedelta(minutes=14)) == 4
    assert POLICY.failures_after(3, T0, T0 + timedelta(minutes=15)) == 1


def test_window_starts_when_the_lock_ends() -> None:
    # Locked for an hour after the 12th failure: a failure 70 minutes later is still
    # consecutive, so patient attackers stay at the cap instead of starting over.
    assert POLICY.failures_after(12, T0, T0 + timedelta(minutes=70)) == 13
    assert POLICY.expires_at(12, T0) == T0 + timedelta(hours=1, minutes=15)
    assert POLICY.failures_after(12, T0, T0 + timedelta(hours=1, minutes=15)) == 1


def test_attacker_who_retries_when_allowed_is_slowed_to_the_cap() -> None:
    failures, last, now, attempts = 0, None, T0, 0
    while now < T0 + timedelta(days=1):
        failures = POLICY.failures_after(failures, last, now)
        last, attempts = now, attempts + 1
        now += timedelta(seconds=max(POLICY.retry_after_seconds(failures, last, now), 1))
    # Four free tries, then 30 s doubling to an hour: 35 attempts in a day, not thousands.
    assert attempts <= 40
    assert POLICY.lock_duration(failures) == POLICY.max_delay


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_failures": 0},
        {"window": timedelta(0)},
        {"base_delay": timedelta(0)},
        {"base_delay": timedelta(minutes=5), "max_delay": timedelta(minutes=1)},
    ],
)
def test_policy_refuses_senseless_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        ThrottlePolicy(**kwargs)  # type: ignore[arg-type]


def test_naive_times_are_refused() -> None:
    naive = datetime(2025, 3, 1, 12, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        POLICY.locked_until(5, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        POLICY.failures_after(1, T0, naive)


def test_keys_hold_no_username_or_address_and_depend_on_the_secret() -> None:
    keys = ThrottleKeys(SECRET)
    account, address = keys.for_login("amira.haddad", "203.0.113.7")
    assert account.startswith("account:")
    assert len(account) == len("account:") + 64
    assert address.startswith("address:")
    assert len(address) == len("address:") + 64
    assert "amira" not in account
    assert "203.0.113" not in address
    other = ThrottleKeys(bytes(32))
    assert other.account("amira.haddad") != account
    assert SECRET.hex() not in repr(keys)


@pytest.mark.parametrize(
    "spelling",
    ["Amira.Haddad", "AMIRA.HADDAD", "  amira.haddad ", "ａｍｉｒａ.haddad"],  # noqa: RUF001
)
def test_account_key_ignores_case_width_and_surrounding_spaces(spelling: str) -> None:
    keys = ThrottleKeys(SECRET)
    assert keys.account(spelling) == keys.account("amira.haddad")


def test_distinct_accounts_get_distinct_keys() -> None:
    keys = ThrottleKeys(SECRET)
    assert keys.account("amira.haddad") != keys.account("amira.hadad")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("fe80::1%eth0", "fe80::2"),
    ],
)
def test_addresses_sharing_a_client_share_a_key(first: str, second: str) -> None:
    keys = ThrottleKeys(SECRET)
    assert keys.address(first) == keys.address(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [("203.0.113.7", "203.0.113.8"), ("2001:db8:1:2::1", "2001:db8:1:3::1")],
)
def test_different_clients_get_different_keys(first: str, second: str) -> None:
    keys = ThrottleKeys(SECRET)
    assert keys.address(first) != keys.address(second)


def test_account_and_address_keys_never_collide() -> None:
    keys = ThrottleKeys(SECRET)
    assert keys.account("1.2.3.4") != keys.address("1.2.3.4")


@pytest.mark.parametrize("address", ["", "localhost", "203.0.113", "203.0.113.7:443", "::g"])
def test_unparseable_address_is_refused_without_echo(address: str) -> None:
    with pytest.raises(ValueError, match="not an IP address") as caught:
        ThrottleKeys(SECRET).address(address)
    assert str(caught.value) == "client address is not an IP address"


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        ThrottleKeys(bytes(31))


@settings(max_examples=100, deadline=None)
@given(username=st.text(max_size=40))
def test_any_username_yields_a_fixed_size_key(username: str) -> None:
    key = ThrottleKeys(SECRET).account(username)
    assert len(key) == len("account:") + 64
