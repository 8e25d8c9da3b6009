"""Time-based one-time passwords (RFC 6238) as second factor, with replay refusal.

Parameters are the ones every authenticator app understands: HMAC-SHA1, 6 digits,
30-second steps. A code is accepted one step early or late for clock drift, and a
step once used (or any earlier one) is refused, so an observed code cannot be replayed.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from datetime import datetime
from enum import StrEnum

import pyotp

TOTP_DIGITS = 6
TOTP_INTERVAL_SECONDS = 30
#: Steps accepted on either side of the current one (clock drift, slow typing).
TOTP_WINDOW_STEPS = 1
TOTP_SECRET_BYTES = 20  # 160 bits, the length RFC 4226 recommends


class TotpFailure(StrEnum):
    """Why a code was refused: for the audit log only; the client hears one message."""

    MALFORMED = "malformed"
    WRONG = "wrong"
    REPLAYED = "replayed"


class TotpError(Exception):
    """A one-time code was refused; ``failure`` says why."""

    def __init__(self, failure: TotpFailure) -> None:
        super().__init__("one-time code refused")
        self.failure = failure


def new_totp_secret() -> str:
    """Return a new 160-bit secret as unpadded base32 (32 characters)."""
    return base64.b32encode(secrets.token_bytes(TOTP_SECRET_BYTES)).decode("ascii")


def _totp(secret: str) -> pyotp.TOTP:
    try:
        return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_INTERVAL_SECONDS)
    except ValueError:
        raise ValueError("TOTP secret is not base32 of at least 112 bits") from None


def provisioning_uri(secret: str, username: str, issuer: str = "casework") -> str:
    """Return the ``otpauth://totp/...`` URI that an authenticator app reads from a QR code."""
    return _totp(secret).provisioning_uri(name=username, issuer_name=issuer)


def time_step(now: datetime) -> int:
    """Return the RFC 6238 time step (30-second counter since the Unix epoch) of ``now``.

    Raises ValueError for a naive datetime, whose instant is ambiguous.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return int(now.timestamp() // TOTP_INTERVAL_SECONDS)


def _digits(code: str) -> str:
    digits = code.replace(" ", "")  # apps display "123 456"
    if len(digits) != TOTP_DIGITS or not (digits.isascii() and digits.isdigit()):
        raise TotpError(TotpFailure.MALFORMED)
    return digits


def verify_totp(secret: str, code: str, now: datetime, last_used_step: int | None) -> int:
    """Return the time step that ``code`` belongs to; store it as the new ``last_used_step``.

    Raises :class:`TotpError` when the code is malformed, matches no step within
    ``TOTP_WINDOW_STEPS`` of ``now``, or matches only steps at or below
    ``last_used_step``. Every step in the window is compared, in constant time.
    """
    totp = _totp(secret)
    digits = _digits(code)
    current = time_step(now)
    window = range(max(0, current - TOTP_WINDOW_STEPS), current + TOTP_WINDOW_STEPS + 1)
    matches = [step for step in window if hmac.compare_digest(totp.generate_otp(step), digits)]
    fresh = [step for step in matches if last_used_step is None or step > last_used_step]
    if fresh:
        return max(fresh)
    raise TotpError(TotpFailure.REPLAYED if matches else TotpFailure.WRONG)
