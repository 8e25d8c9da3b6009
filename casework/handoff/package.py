"""What a partner package carries, and how a received one becomes a new case.

The package's ``fields`` hold only consented fields, named as consent names
them: ``specific_needs`` for the case and ``members.<name>`` for every member
of the household (a consent covers the household's records of that field).
Members travel in household order, without their ids; a child's ``mother`` is
the position of the mother in the list, as intake takes it. Values are JSON
as the API writes them (dates in ISO format).

On the receiving side the fields go through the intake contract
(:class:`~casework.cases.schemas.IntakeIn`) unchanged, so a package that is
not a valid household (a field this deployment does not know, a member
without relationship, sex or full name) is refused rather than half imported.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from marshmallow import ValidationError

from casework.cases.models import MEMBER_FIELDS, Case
from casework.cases.schemas import IntakeIn
from casework.handoff.partner_package import KEY_BYTES, MAGIC, PackageError

CASE_LEVEL_FIELDS = ("specific_needs",)
EXPORTABLE_FIELDS: frozenset[str] = frozenset(
    {*CASE_LEVEL_FIELDS, *(f"members.{name}" for name in MEMBER_FIELDS)}
)
"""Every field name a consent may let travel."""

_SENDER = slice(len(MAGIC) + 2, len(MAGIC) + 2 + KEY_BYTES)
_RECIPIENT = slice(len(MAGIC) + 2 + KEY_BYTES, len(MAGIC) + 2 + 2 * KEY_BYTES)


class ImportRefused(PackageError):
    """The package opened but its contents cannot become a case; the message names fields only."""


def sender_key_of(blob: bytes) -> bytes:
    """The Ed25519 public key a package claims to be signed with (not yet verified)."""
    return blob[_SENDER]


def recipient_key_of(blob: bytes) -> bytes:
    """The X25519 public key a package says it is sealed to."""
    return blob[_RECIPIENT]


def _jsonable(name: str, value: Any, positions: Mapping[uuid.UUID, int]) -> Any:
    if name == "mother":
        return None if value is None else positions.get(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def package_fields(case: Case, allowed: Iterable[str]) -> tuple[dict[str, Any], list[str]]:
    """The case's values of the ``allowed`` field names, and the names that travel.

    Names a consent holds that no case field has are ignored (they cannot
    travel); a value that is empty travels as empty, so the partner sees the
    field was shared.
    """
    wanted = set(allowed) & EXPORTABLE_FIELDS
    fields: dict[str, Any] = {}
    if "specific_needs" in wanted:
        fields["specific_needs"] = list(case.specific_needs or [])
    names = [name for name in MEMBER_FIELDS if f"members.{name}" in wanted]
    if names:
        positions = {member.id: i for i, member in enumerate(case.members)}
        fields["members"] = [
            {name: _jsonable(name, getattr(member, name), positions) for name in names}
            for member in case.members
        ]
    return fields, sorted(wanted)


def received_names(fields: Mapping[str, Any]) -> list[str]:
    """The field names a received package carries (for the access log)."""
    names = {name for name in fields if name != "members"}
    for member in fields.get("members") or ():
        if isinstance(member, Mapping):
            names.update(f"members.{name}" for name in member)
    return sorted(names)


def household_from(fields: Mapping[str, Any], office: str) -> dict[str, Any]:
    """The package's fields as validated intake data for ``office``.

    Raises :class:`ImportRefused` naming the fields at fault (never a value).
    """
    body = {**fields, "office": office}
    try:
        loaded: dict[str, Any] = IntakeIn().load(body)
    except ValidationError as error:
        raise ImportRefused(
            "the package is not a valid household here: " + ", ".join(_paths(error.messages))
        ) from None
    return loaded


def _paths(messages: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the fields with errors, from marshmallow's nested messages."""
    if not isinstance(messages, Mapping):
        return [prefix or "package"]
    found: list[str] = []
    for key, value in messages.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            found += _paths(value, path)
        else:
            found.append(path)
    return sorted(set(found))
