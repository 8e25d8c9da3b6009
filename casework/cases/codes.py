"""The case vocabularies: enums of the API contract and the shipped code lists.

Enum values are a contract that clients build against: never rename one,
only add. The specific-needs codes and country codes are data files under
``casework/cases/data/``, validated when loaded so a bad edit fails at start-up
rather than on a caseworker's request.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any


class Stage(StrEnum):
    """Where a case is in its life; intake creates ``intake``."""

    INTAKE = "intake"
    VETTING = "vetting"
    DETERMINATION = "determination"
    RESETTLEMENT = "resettlement"
    HANDED_OFF = "handed_off"
    CLOSED = "closed"


class ResettlementStage(StrEnum):
    """Resettlement progress; ``not_considered`` until a case is identified for it."""

    NOT_CONSIDERED = "not_considered"
    IDENTIFIED = "identified"
    NEEDS_ASSESSMENT = "needs_assessment"
    DEPRIORITISED = "deprioritised"
    INTERVIEW = "interview"
    RRF_PREPARATION = "rrf_preparation"
    SUBMISSION_REVIEW = "submission_review"
    SUBMITTED = "submitted"
    STATE_DECISION = "state_decision"
    PENDING_DEPARTURE_ARRANGEMENTS = "pending_departure_arrangements"
    DEPARTED = "departed"
    ARRIVED = "arrived"


class Relationship(StrEnum):
    """A member's relationship to the principal applicant of the household."""

    PRINCIPAL_APPLICANT = "principal_applicant"
    SPOUSE = "spouse"
    CHILD = "child"
    PARENT = "parent"
    SIBLING = "sibling"
    OTHER_RELATIVE = "other_relative"
    NON_RELATIVE = "non_relative"


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class DocumentType(StrEnum):
    PASSPORT = "passport"
    NATIONAL_ID = "national_id"
    BIRTH_CERTIFICATE = "birth_certificate"
    REFUGEE_ID = "refugee_id"
    UNHCR_REGISTRATION = "unhcr_registration"
    OTHER = "other"


class BirthRegistration(StrEnum):
    """How far a child's birth is registered: the first defence against statelessness."""

    NOT_REGISTERED = "not_registered"
    NOTIFIED = "notified"
    REGISTERED_NO_CERTIFICATE = "registered_no_certificate"
    CERTIFICATE_ISSUED = "certificate_issued"
    LATE_REGISTRATION_PENDING = "late_registration_pending"
    UNKNOWN = "unknown"


class NationalityStatus(StrEnum):
    NATIONALITY_CONFIRMED = "nationality_confirmed"
    AT_RISK_OF_STATELESSNESS = "at_risk_of_statelessness"
    UNDETERMINED = "undetermined"
    STATELESS_DETERMINED = "stateless_determined"
    UNKNOWN = "unknown"


class RegistrationDecision(StrEnum):
    """What to do about registering a birth that might expose a parent."""

    REGISTER_NOW = "register_now"
    DEFER = "defer"
    DO_NOT_REGISTER = "do_not_register"


class CodeListError(ValueError):
    """A code-list file is malformed; the message names the file and the entry."""


class UnknownCode(ValueError):
    """A code that is not in the list; the message never repeats it."""


_NEED_CODE = re.compile(r"[A-Z]{2}-[A-Z]{2}")
_FAMILY_CODE = re.compile(r"[A-Z]{2}")
_COUNTRY_CODE = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True, slots=True)
class Need:
    """One specific-needs code, e.g. ``LP-RR`` in family ``LP``."""

    code: str
    family: str
    label: str


@dataclass(frozen=True, slots=True)
class NeedsCatalogue:
    """The specific-needs families and codes in force (shipped list plus extensions)."""

    families: Mapping[str, str]
    needs: Mapping[str, Need]

    def is_valid(self, code: object) -> bool:
        return isinstance(code, str) and code in self.needs

    def family(self, code: str) -> str:
        """The family of ``code`` (``SV`` for ``SV-VA``); :class:`UnknownCode` if absent."""
        need = self.needs.get(code)
        if need is None:
            raise UnknownCode("not a known specific-needs code")
        return need.family


def _read_json(path: Path | resources.abc.Traversable) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CodeListError(f"{path}: not readable JSON") from exc


def _text(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CodeListError(f"{where}: '{key}' must be a non-empty string")
    return value


def _entries(document: Any, key: str, where: str) -> list[Mapping[str, Any]]:
    if not isinstance(document, dict) or not isinstance(document.get("metadata"), dict):
        raise CodeListError(f"{where}: expected an object with 'metadata'")
    entries = document.get(key)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise CodeListError(f"{where}: '{key}' must be a list of objects")
    return entries


def _add_needs_file(
    document: Any, where: str, families: dict[str, str], needs: dict[str, Need]
) -> None:
    for entry in _entries(document, "families", where):
        code = _text(entry, "code", where)
        if not _FAMILY_CODE.fullmatch(code) or code in families:
            raise CodeListError(f"{where}: family {code!r} is malformed or defined twice")
        families[code] = _text(entry, "label", f"{where} {code}")
    for entry in _entries(document, "codes", where):
        code = _text(entry, "code", where)
        family = _text(entry, "family", f"{where} {code}")
        if not _NEED_CODE.fullmatch(code) or code in needs:
            raise CodeListError(f"{where}: code {code!r} is malformed or defined twice")
        if family not in families or not code.startswith(family + "-"):
            raise CodeListError(f"{where}: code {code!r} does not belong to family {family!r}")
        needs[code] = Need(code, family, _text(entry, "label", f"{where} {code}"))


def load_needs_catalogue(extensions: Iterable[Path] = ()) -> NeedsCatalogue:
    """Load the shipped specific-needs list, then each extension file in order.

    Extensions (a field office's additions) have the shipped file's shape and
    may add families and codes but never redefine one: a code must mean the
    same everywhere a case travels. Raises :class:`CodeListError`.
    """
    families: dict[str, str] = {}
    needs: dict[str, Need] = {}
    shipped = resources.files("casework.cases") / "data" / "specific_needs.json"
    _add_needs_file(_read_json(shipped), "specific_needs.json", families, needs)
    for path in extensions:
        _add_needs_file(_read_json(path), str(path), families, needs)
    return NeedsCatalogue(MappingProxyType(families), MappingProxyType(needs))


@functools.cache
def _shipped_needs() -> NeedsCatalogue:
    return load_needs_catalogue()


_active_needs: NeedsCatalogue | None = None


def use_needs_catalogue(catalogue: NeedsCatalogue | None) -> None:
    """Make ``catalogue`` (with a field office's extensions) the one in force.

    Called once at start-up; ``None`` returns to the shipped list.
    """
    global _active_needs  # one process-wide vocabulary, set at start-up
    _active_needs = catalogue


def needs_catalogue() -> NeedsCatalogue:
    """The specific-needs catalogue in force (the shipped one unless replaced)."""
    return _active_needs or _shipped_needs()


def is_valid_need(code: object) -> bool:
    """Whether ``code`` is a specific-needs code in force (exact, upper case)."""
    return needs_catalogue().is_valid(code)


def need_family(code: str) -> str:
    """The family of a needs code (``LP`` for ``LP-RR``); raises :class:`UnknownCode`."""
    return needs_catalogue().family(code)


@functools.cache
def countries() -> Mapping[str, str]:
    """Accepted country-of-origin codes mapped to their English names.

    ISO 3166-1 alpha-3 codes in current use plus ICAO's XXA (stateless), XXB,
    XXC (refugees) and XXX (unspecified). Raises :class:`CodeListError`.
    """
    where = "countries.json"
    document = _read_json(resources.files("casework.cases") / "data" / where)
    names: dict[str, str] = {}
    for key in ("countries", "travel_document_codes"):
        for entry in _entries(document, key, where):
            code = _text(entry, "code", where)
            if not _COUNTRY_CODE.fullmatch(code) or code in names:
                raise CodeListError(f"{where}: code {code!r} is malformed or listed twice")
            names[code] = _text(entry, "name", f"{where} {code}")
    return MappingProxyType(names)


def is_valid_country(code: object) -> bool:
    """Whether ``code`` is an accepted country code (exact, upper case)."""
    return isinstance(code, str) and code in countries()


class ErasureStatus(StrEnum):
    """Where an erasure request stands. ``expired``: pending past its expiry, never decided;
    ``cancelled``: the case was erased through another request."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
