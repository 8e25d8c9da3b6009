"""Consent as pure evaluation: is there valid consent for this purpose and recipient now?

A consent record says who in the household agreed (``given_by``, a member id),
for what purpose, to which recipients, which fields may travel, when, and
until when. The rules lean towards refusing whenever a record is in doubt,
because sharing data without consent can expose a person to the people they
fled:

* a withdrawn record is void at once, whatever the withdrawal's timestamp
  says (a field laptop's clock may run ahead or behind: withdrawal still wins);
* a record is valid from ``given_at`` (inclusive) to ``expires_at`` (exclusive),
  so a record dated in the future does not count yet;
* recipients match exactly; there is no wildcard, consent names who gets the data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ConsentPurpose(StrEnum):
    """What the person agreed their data may be used for."""

    REFERRAL = "referral"
    RESETTLEMENT_SUBMISSION = "resettlement_submission"
    DATA_SHARING = "data_sharing"


PARTNER_PURPOSES = (ConsentPurpose.REFERRAL, ConsentPurpose.DATA_SHARING)
"""Either of these allows a hand-off to a partner organisation."""


def _aware(value: datetime | None, name: str) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be a timezone-aware datetime")


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """One consent given by one member; ``fields`` are the field names it lets travel."""

    purpose: ConsentPurpose
    recipients: frozenset[str]
    given_by: str
    given_at: datetime
    expires_at: datetime | None = None
    withdrawn_at: datetime | None = None
    fields: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not isinstance(self.purpose, ConsentPurpose):
            raise ValueError("purpose must be a ConsentPurpose")
        if not self.recipients or not all(isinstance(r, str) and r for r in self.recipients):
            raise ValueError("a consent names at least one recipient")
        if not self.given_by:
            raise ValueError("a consent is given by a member")
        _aware(self.given_at, "given_at")
        _aware(self.expires_at, "expires_at")
        _aware(self.withdrawn_at, "withdrawn_at")
        if self.expires_at is not None and self.expires_at <= self.given_at:
            raise ValueError("a consent must expire after it is given")

    @property
    def is_withdrawn(self) -> bool:
        return self.withdrawn_at is not None

    def is_valid(self, purpose: ConsentPurpose, recipient: str, now: datetime) -> bool:
        """Whether this record allows ``purpose`` for ``recipient`` at ``now``."""
        _aware(now, "now")
        return (
            self.purpose == purpose
            and recipient in self.recipients
            and not self.is_withdrawn
            and self.given_at <= now
            and (self.expires_at is None or now < self.expires_at)
        )


def valid_records(
    records: Iterable[ConsentRecord],
    purposes: Iterable[ConsentPurpose],
    recipient: str,
    now: datetime,
) -> list[ConsentRecord]:
    """The records that allow any of ``purposes`` for ``recipient`` at ``now``."""
    wanted = tuple(purposes)
    return [r for r in records if any(r.is_valid(p, recipient, now) for p in wanted)]


def has_valid_consent(
    records: Iterable[ConsentRecord], purpose: ConsentPurpose, recipient: str, now: datetime
) -> bool:
    """Whether some record allows ``purpose`` for ``recipient`` at ``now`` (aware datetime)."""
    return bool(valid_records(records, (purpose,), recipient, now))


def consented_fields(
    records: Iterable[ConsentRecord],
    recipient: str,
    now: datetime,
    purposes: Iterable[ConsentPurpose] = PARTNER_PURPOSES,
) -> frozenset[str]:
    """The field names that valid consent lets travel to ``recipient``: the union over records."""
    allowed: set[str] = set()
    for record in valid_records(records, purposes, recipient, now):
        allowed |= record.fields
    return frozenset(allowed)
