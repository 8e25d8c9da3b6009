"""Password hashing (argon2id) and the password policy.

Passwords are NFKC-normalised before hashing, as NIST SP 800-63B advises, so the same
password typed on keyboards or systems that compose characters differently still verifies.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources

import argon2
from argon2.exceptions import VerificationError

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
#: A username shorter than this is not searched for inside passwords: "al" would forbid
#: thousands of good passphrases while protecting nothing.
MIN_USERNAME_MATCH_LENGTH = 3

_ARGON2ID_PREFIX = "$argon2id$"
_COMMON_PASSWORDS_FILE = "common-passwords.txt"
# Decoration an attacker's rules add around dictionary words ("Sunshine2024!").
_DECORATION = "0123456789 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


@dataclass(frozen=True, slots=True)
class PasswordParams:
    """Argon2id cost parameters.

    The defaults (24 MiB, 2 passes, 1 lane) put a quarter more memory and work than
    OWASP's minimum (19 MiB, 2 passes, 1 lane) while a hash stays well under 100 ms on
    a busy 2-core machine; 3 passes did not. Tests pass cheaper values; production
    configuration should be checked with :meth:`meets_owasp_minimum`.
    """

    memory_kib: int = 24 * 1024
    time_cost: int = 2
    parallelism: int = 1
    hash_len: int = 32
    salt_len: int = 16

    def __post_init__(self) -> None:
        if self.parallelism < 1 or self.time_cost < 1:
            raise ValueError("argon2 time cost and parallelism must be at least 1")
        if self.memory_kib < 8 * self.parallelism:
            raise ValueError("argon2 memory must be at least 8 KiB per lane")
        if self.hash_len < 16 or self.salt_len < 16:
            raise ValueError("argon2 hash and salt must be at least 16 bytes")

    def meets_owasp_minimum(self) -> bool:
        """Whether these costs reach OWASP's argon2id floor (19 MiB, 2 passes, 1 lane)."""
        return self.memory_kib >= 19 * 1024 and self.time_cost >= 2 and self.parallelism >= 1


DEFAULT_PARAMS = PasswordParams()


class PolicyViolation(StrEnum):
    """Why a new password was refused; the values are safe to show to the user."""

    TOO_SHORT = f"must have at least {MIN_PASSWORD_LENGTH} characters"
    TOO_LONG = f"must have at most {MAX_PASSWORD_LENGTH} characters"
    TOO_COMMON = "is too common"
    CONTAINS_USERNAME = "must not contain the username"
    REPEATED_CHARACTER = "must not be one character repeated"


class PasswordPolicyError(ValueError):
    """A new password breaks the policy; ``reasons`` lists every rule it breaks."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("password refused: " + "; ".join(reasons))
        self.reasons = reasons


@functools.cache
def _hasher(params: PasswordParams) -> argon2.PasswordHasher:
    return argon2.PasswordHasher(
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=params.hash_len,
        salt_len=params.salt_len,
        type=argon2.Type.ID,
    )


def _normalise(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def _secret_bytes(password: str) -> bytes:
    # surrogatepass: a lone surrogate (valid in JSON) must hash, not crash a login.
    return _normalise(password).encode("utf-8", "surrogatepass")


def hash_password(password: str, params: PasswordParams = DEFAULT_PARAMS) -> str:
    """Return the argon2id PHC string (parameters, random salt, hash) for ``password``."""
    return _hasher(params).hash(_secret_bytes(password))


def verify_password(
    stored_hash: str, password: str, params: PasswordParams = DEFAULT_PARAMS
) -> bool:
    """Return whether ``password`` matches ``stored_hash``; never raises.

    A malformed or non-argon2id stored hash answers False after spending the time of a
    real verification under ``params`` (the service's current costs), so an account
    with an unusable hash cannot be told apart from one with a wrong password.
    """
    if not stored_hash.startswith(_ARGON2ID_PREFIX):
        return verify_dummy(password, params)
    try:
        return _hasher(params).verify(stored_hash, _secret_bytes(password))
    except ValueError:  # InvalidHashError and parameter parsing errors
        return verify_dummy(password, params)
    except VerificationError:
        return False


def needs_rehash(stored_hash: str, params: PasswordParams = DEFAULT_PARAMS) -> bool:
    """Return whether ``stored_hash`` was made with other costs than ``params``.

    Call it after a successful login and store a new hash when it answers True; a
    malformed hash always needs one.
    """
    if not stored_hash.startswith(_ARGON2ID_PREFIX):
        return True
    try:
        return _hasher(params).check_needs_rehash(stored_hash)
    except ValueError:  # InvalidHashError and parameter parsing errors
        return True


@functools.cache
def dummy_hash(params: PasswordParams = DEFAULT_PARAMS) -> str:
    """Return a hash of a random, forgotten password, computed once per ``params``.

    A function rather than a module constant: it is computed on first use (not at
    import), and it must follow the costs the service is configured with, or logins
    for unknown users would take a different time than wrong passwords.
    """
    return hash_password(secrets.token_urlsafe(32), params)


def verify_dummy(password: str, params: PasswordParams = DEFAULT_PARAMS) -> bool:
    """Spend the time of a failed verification and return False.

    Use it when the username is unknown, so response times do not reveal which
    usernames exist.
    """
    with contextlib.suppress(VerificationError):
        _hasher(params).verify(dummy_hash(params), _secret_bytes(password))
    return False


@functools.cache
def _common_passwords() -> frozenset[str]:
    text = (
        resources.files(__package__ or "casework.auth") / "data" / _COMMON_PASSWORDS_FILE
    ).read_text(encoding="utf-8")
    return frozenset(
        _normalise(line).casefold()
        for line in text.splitlines()
        if line and not line.startswith("#")
    )


def is_common_password(password: str) -> bool:
    """Whether the password, or its core without leading and trailing digits and
    punctuation, is in the bundled list of common passwords (compared casefolded)."""
    folded = _normalise(password).casefold()
    common = _common_passwords()
    core = folded.strip(_DECORATION)
    return folded in common or (core != "" and core in common)


def _contains_username(folded_password: str, username: str) -> bool:
    folded_username = _normalise(username).casefold().strip()
    return len(folded_username) >= MIN_USERNAME_MATCH_LENGTH and folded_username in folded_password


def policy_violations(password: str, username: str) -> list[PolicyViolation]:
    """Return every rule of the password policy that ``password`` breaks, in a fixed order.

    Lengths count Unicode code points after NFKC normalisation, the form that is hashed.
    """
    normalised = _normalise(password)
    violations: list[PolicyViolation] = []
    if len(normalised) < MIN_PASSWORD_LENGTH:
        violations.append(PolicyViolation.TOO_SHORT)
    if len(normalised) > MAX_PASSWORD_LENGTH:
        violations.append(PolicyViolation.TOO_LONG)
    if is_common_password(normalised):
        violations.append(PolicyViolation.TOO_COMMON)
    if _contains_username(normalised.casefold(), username):
        violations.append(PolicyViolation.CONTAINS_USERNAME)
    if len(set(normalised)) == 1:
        violations.append(PolicyViolation.REPEATED_CHARACTER)
    return violations


def check_password_policy(password: str, username: str) -> None:
    """Raise :class:`PasswordPolicyError` listing every rule ``password`` breaks."""
    violations = policy_violations(password, username)
    if violations:
        raise PasswordPolicyError(list(violations))
