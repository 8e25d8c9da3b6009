"""Login throttling: the pure policy and the derivation of the keys counters are kept under.

The service keeps, per key, the number of consecutive failures and the time of the
last one; this module decides from those two values whether the key is locked and
until when. It knows nothing about storage, so the same rules serve a database table
today and Redis when the app runs on several hosts.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

THROTTLE_SECRET_MIN_BYTES = 32
#: IPv6 clients are throttled per /64: a single host usually owns a whole /64 and can
#: pick a new address from it for every attempt.
IPV6_PREFIX_BITS = 64


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("throttle times must be timezone-aware")


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """After ``max_failures`` consecutive failures a key is locked for ``base_delay``,
    doubling with every further failure up to ``max_delay``.

    Failures are consecutive while each comes less than ``window`` after the previous
    one ended its lock (or after the previous failure, when it caused no lock): a key
    left quiet for ``window`` starts again from zero, one that keeps failing right after
    each lock ends climbs to ``max_delay``.
    """

    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    base_delay: timedelta = timedelta(seconds=30)
    max_delay: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        if self.window <= timedelta(0) or self.base_delay <= timedelta(0):
            raise ValueError("window and base_delay must be positive")
        if self.max_delay < self.base_delay:
            raise ValueError("max_delay must not be shorter than base_delay")

    def lock_duration(self, failures: int) -> timedelta:
        """Return how long the key is locked after its ``failures``-th consecutive failure."""
        if failures < self.max_failures:
            return timedelta(0)
        delay = self.base_delay
        for _ in range(failures - self.max_failures):  # returns within log2(max/base) rounds
            if delay >= self.max_delay / 2:
                return self.max_delay
            delay *= 2
        return delay

    def locked_until(self, failures: int, last_failure_at: datetime) -> datetime | None:
        """Return the end of the lock, or None when ``failures`` are below the threshold."""
        _require_aware(last_failure_at)
        if failures < self.max_failures:
            return None
        return last_failure_at + self.lock_duration(failures)

    def retry_after_seconds(self, failures: int, last_failure_at: datetime, now: datetime) -> int:
        """Return the whole seconds to wait before the next attempt (0: not locked).

        Rounded up, so a client that obeys a ``Retry-After`` header never arrives early.
        """
        _require_aware(now)
        until = self.locked_until(failures, last_failure_at)
        if until is None or until <= now:
            return 0
        return math.ceil((until - now).total_seconds())

    def expires_at(self, failures: int, last_failure_at: datetime) -> datetime:
        """Return when the counter may be forgotten: ``window`` after the lock (or the
        last failure) ended. The service can purge rows past this time."""
        ended = self.locked_until(failures, last_failure_at) or last_failure_at
        return ended + self.window

    def failures_after(self, failures: int, last_failure_at: datetime | None, now: datetime) -> int:
        """Return the count to store when a new failure happens at ``now``."""
        _require_aware(now)
        if last_failure_at is None or now >= self.expires_at(failures, last_failure_at):
            return 1
        return failures + 1


class ThrottleKeys:
    """Derives the opaque keys login counters are stored under.

    Keys are HMAC-SHA256 under a server secret, not plain hashes: staff usernames are
    few and guessable, so an unkeyed hash in a leaked table would give them away.
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < THROTTLE_SECRET_MIN_BYTES:
            raise ValueError(
                f"throttle secret must have at least {THROTTLE_SECRET_MIN_BYTES} bytes"
            )
        self._secret = secret

    def __repr__(self) -> str:
        return "ThrottleKeys(<secret>)"

    def _key(self, kind: str, material: bytes) -> str:
        digest = hmac.new(self._secret, kind.encode("ascii") + b"\x00" + material, hashlib.sha256)
        return f"{kind}:{digest.hexdigest()}"

    def account(self, username: str) -> str:
        """Return the key for a username, however its case, width or surrounding spaces vary.

        Normalising at least as much as the user lookup does means no spelling of a name
        escapes its counter; spellings merged here that the lookup tells apart only share one.
        """
        folded = unicodedata.normalize("NFKC", username).casefold().strip()
        return self._key("account", folded.encode("utf-8", "surrogatepass"))

    def address(self, client_address: str) -> str:
        """Return the key for a client IP address (IPv6 per /64, IPv4-mapped as IPv4).

        Raises ValueError when ``client_address`` is not an IP address.
        """
        try:
            parsed = ipaddress.ip_address(client_address)
        except ValueError:
            raise ValueError("client address is not an IP address") from None
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
            parsed = parsed.ipv4_mapped
        if isinstance(parsed, ipaddress.IPv6Address):
            host_bits = 128 - IPV6_PREFIX_BITS
            parsed = ipaddress.IPv6Address(int(parsed) >> host_bits << host_bits)
        return self._key("address", parsed.packed)

    def for_login(self, username: str, client_address: str) -> tuple[str, str]:
        """Return the (account, address) keys a login attempt is counted under."""
        return self.account(username), self.address(client_address)
