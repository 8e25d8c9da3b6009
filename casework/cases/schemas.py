"""The cases API contract: request and response bodies as marshmallow schemas.

Every input schema rejects unknown fields, nested ones included. Field
validators check one value; cross-field rules live in :mod:`casework.cases.rules`
so the service can apply them again to a household merged with a PATCH.
No error message repeats the submitted value: it may be personal data.

Limits, chosen to fit real records with room to spare while keeping one
request, one ciphertext and one log line bounded:

=====================  ======  =============================================
field                  limit   why
=====================  ======  =============================================
names, place of birth    200   longest multi-part names seen in registration
other_names (items)       20   aliases, maiden names, spellings
documents (items)         20
document number           64   passports use 9, national ids up to ~20
phone                     40   international format with separators
address                1,000   camp, block, shelter and landmark directions
narrative             20,000   about ten pages: the case story, not files
registration reason    2,000
specific_needs (items)   100   more than the whole shipped code list
members                   50   the largest households in resettlement files
=====================  ======  =============================================

Empty or blank strings are refused everywhere: send ``null`` (or leave the
field out) when there is no value. Control characters are refused, except
line breaks and tabs in the multi-line fields (address, narrative, reason).
"""

from __future__ import annotations

import re
import uuid
from enum import StrEnum
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from casework.api import (
    REPEATED,
    StrictBoolean,
    StrictInteger,
    StrictSchema,
    Text,
    enum_in,
    unique,
)
from casework.cases import codes, rules
from casework.cases.codes import (
    BirthRegistration,
    DocumentType,
    NationalityStatus,
    RegistrationDecision,
    Relationship,
    ResettlementStage,
    Sex,
    Stage,
)
from casework.pagination import PageArgs

NAME_MAX = 200
OTHER_NAMES_MAX_ITEMS = 20
DOCUMENTS_MAX_ITEMS = 20
DOCUMENT_NUMBER_MAX = 64
PHONE_MAX = 40
ADDRESS_MAX = 1_000
NARRATIVE_MAX = 20_000
REASON_MAX = 2_000
NEEDS_MAX_ITEMS = 100
OFFICE_CODE = re.compile(r"[a-z0-9][a-z0-9-]{1,31}")  # as casework.offices.schemas
_PHONE = re.compile(r"\+?[0-9 ()./-]+")
_PHONE_MIN_DIGITS = 3

NOT_A_NEED = "Not a known specific-needs code."
NOT_A_COUNTRY = "Not an ISO 3166-1 alpha-3 country code (or XXA, XXB, XXC, XXX)."
NOT_AN_OFFICE = "Must be an office code: 2 to 32 lower-case letters, digits or hyphens."
NOT_A_PHONE = "Must be a phone number: digits, spaces and + ( ) . / - only."
NOT_A_MOTHER_INDEX = "Must be the position (from 0) of another member in this request."
NOTHING_TO_CHANGE = "Nothing to change."
CHANGED_TWICE = "This member is changed more than once in this request."
CHANGED_AND_REMOVED = "This member is also changed in this request."
SEARCH_ONE_WAY = "Search by document_number or by full_name and birth_year, not both."
SEARCH_NO_KEY = "Give document_number, or full_name and birth_year."
REQUIRED_WITH = "Required with {other}."


# --- fields -------------------------------------------------------------------------------


def _enum_out(enum: type[StrEnum], description: str, **kwargs: Any) -> fields.String:
    # Output takes plain strings or enum members alike (storage may give either);
    # the OneOf validator only documents the values in the OpenAPI document.
    return fields.String(
        validate=validate.OneOf([e.value for e in enum]),
        metadata={"description": description},
        **kwargs,
    )


# --- field validators ---------------------------------------------------------------------


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValidationError(message)


def _need_code(value: str) -> None:
    _check(codes.is_valid_need(value), NOT_A_NEED)


def _country_code(value: str) -> None:
    _check(codes.is_valid_country(value), NOT_A_COUNTRY)


def _office_code(value: str) -> None:
    _check(OFFICE_CODE.fullmatch(value) is not None, NOT_AN_OFFICE)


def _phone(value: str) -> None:
    digits = sum(c.isdigit() for c in value)
    _check(_PHONE.fullmatch(value) is not None and digits >= _PHONE_MIN_DIGITS, NOT_A_PHONE)


def _birth_year(value: int) -> None:
    message = rules.birth_year_error(value, rules.utc_today())
    if message:
        raise ValidationError(message)


def _date_of_birth(value: Any) -> None:
    message = rules.date_of_birth_error(value, rules.utc_today())
    if message:
        raise ValidationError(message)


def _needs_field(**kwargs: Any) -> fields.List:
    return fields.List(
        fields.String(validate=_need_code),
        validate=[validate.Length(max=NEEDS_MAX_ITEMS), unique],
        metadata={
            "description": (
                "UNHCR specific-needs codes of the household (e.g. LP-RR, SC-UC), each at "
                "most once; the list in force is the shipped one plus any extension of "
                "the field office."
            ),
            "example": ["SC-UC", "LP-RR"],
        },
        **kwargs,
    )


# --- input schemas ------------------------------------------------------------------------


NAME_LATER = "Name an unnamed child by setting full_name; unnamed is set at registration only."


class DocumentIn(StrictSchema):
    type = enum_in(DocumentType, "Kind of document.", required=True)
    number = Text(
        max_length=DOCUMENT_NUMBER_MAX,
        required=True,
        metadata={"description": "Document number as printed.", "example": "P0000000"},
    )


class RegistrationRiskIn(StrictSchema):
    """Whether registering a child's birth would expose a parent, and what was decided."""

    exposes_parent = StrictBoolean(
        required=True,
        metadata={
            "description": (
                "Registering the birth would expose a parent to harm, e.g. a mother without "
                "status who faces repatriation."
            )
        },
    )
    decision = enum_in(RegistrationDecision, "What was decided about registration.", required=True)
    reason = Text(
        max_length=REASON_MAX,
        multiline=True,
        required=True,
        metadata={"description": "Why; read by the next caseworker."},
    )


class MemberFields(StrictSchema):
    """The fields of a household member shared by intake, add and change."""

    relationship = enum_in(Relationship, "Relationship to the principal applicant.", required=True)
    sex = enum_in(Sex, "Sex as recorded.", required=True)
    birth_year = StrictInteger(
        allow_none=True,
        validate=_birth_year,
        metadata={"description": "Year of birth, 1900 to this year; may be estimated."},
    )
    country_of_origin = fields.String(
        allow_none=True,
        validate=_country_code,
        metadata={
            "description": "ISO 3166-1 alpha-3 code; XXA for a stateless person.",
            "example": "SYR",
        },
    )
    full_name = Text(
        max_length=NAME_MAX,
        metadata={
            "description": "Full name as the person gives it; required unless unnamed.",
            "example": "Amina Example",
        },
    )
    unnamed = StrictBoolean(
        metadata={
            "description": (
                "true for a child under 2 who has no name yet (leave out full_name); "
                "name the child later with a change that sets full_name."
            )
        }
    )
    other_names = fields.List(
        Text(max_length=NAME_MAX),
        validate=validate.Length(max=OTHER_NAMES_MAX_ITEMS),
        metadata={"description": "Aliases, former names and other spellings."},
    )
    date_of_birth = fields.Date(
        allow_none=True,
        validate=_date_of_birth,
        metadata={"description": "Exact date of birth when known; its year must be birth_year."},
    )
    place_of_birth = Text(max_length=NAME_MAX, allow_none=True)
    documents = fields.List(
        fields.Nested(DocumentIn),
        validate=validate.Length(max=DOCUMENTS_MAX_ITEMS),
        metadata={"description": "Identity documents held or seen."},
    )
    phone = Text(
        max_length=PHONE_MAX,
        allow_none=True,
        validate=_phone,
        metadata={"example": "+000 00 000 0000"},
    )
    address = Text(max_length=ADDRESS_MAX, multiline=True, allow_none=True)
    narrative = Text(
        max_length=NARRATIVE_MAX,
        multiline=True,
        allow_none=True,
        metadata={"description": "The person's account, in the caseworker's words."},
    )
    birth_registration = enum_in(
        BirthRegistration,
        "Children only (see mother): how far the birth is registered.",
        allow_none=True,
    )
    nationality_status = enum_in(
        NationalityStatus, "Children only: nationality or risk of statelessness.", allow_none=True
    )
    registration_risk = fields.Nested(
        RegistrationRiskIn,
        allow_none=True,
        metadata={"description": "Children only: whether registering the birth exposes a parent."},
    )


#: Values an intake member gets for fields it leaves out.
_MEMBER_DEFAULTS: dict[str, Any] = {
    "birth_year": None,
    "country_of_origin": None,
    "other_names": [],
    "date_of_birth": None,
    "place_of_birth": None,
    "documents": [],
    "phone": None,
    "address": None,
    "narrative": None,
    "birth_registration": None,
    "nationality_status": None,
    "mother": None,
    "registration_risk": None,
}

_CHILD_RULE = (
    "Children's fields (birth_registration, nationality_status, mother, registration_risk) "
    "are refused for members aged 18 or more, and for members with neither birth_year nor "
    "date_of_birth. With only a birth year, a member counts as a child until the end of the "
    "year they turn 18."
)


class _NewMember(MemberFields):
    @validates_schema
    def _member_rules(self, data: dict[str, Any], **_: Any) -> None:
        today = rules.utc_today()
        errors = {**rules.validate_member(data, today=today), **rules.unnamed_errors(data, today)}
        if errors:
            raise ValidationError(errors)

    @post_load
    def _fill_defaults(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data.pop("unnamed", None)  # an unnamed member is stored with no full_name
        data.setdefault("full_name", None)
        for name, default in _MEMBER_DEFAULTS.items():
            data.setdefault(name, list(default) if isinstance(default, list) else default)
        return data


class MemberIn(_NewMember):
    """A household member at intake."""

    mother = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=0, max=rules.MAX_MEMBERS - 1, error=NOT_A_MOTHER_INDEX),
        metadata={
            "description": (
                "Children only: position (from 0) in `members` of the child's mother, who "
                "must be a female member born at least "
                f"{rules.MOTHER_MIN_AGE_GAP} years before the child. " + _CHILD_RULE
            )
        },
    )


_MOTHER_ID_DESCRIPTION = (
    "Children only: `id` of the child's mother, a female member already in the case and "
    f"born at least {rules.MOTHER_MIN_AGE_GAP} years before the child. A mother added in "
    "the same request has no id yet: link her in a following request."
)


class MemberAddIn(_NewMember):
    """A member added to an existing case."""

    mother = fields.UUID(allow_none=True, metadata={"description": _MOTHER_ID_DESCRIPTION})


class MemberChangeIn(MemberFields):
    """A change to one member: its ``id`` and only the fields that change (null clears)."""

    id = fields.UUID(required=True, metadata={"description": "The member to change."})
    relationship = enum_in(Relationship, "Relationship to the principal applicant.")
    sex = enum_in(Sex, "Sex as recorded.")
    full_name = Text(max_length=NAME_MAX, metadata={"description": "Full name."})
    mother = fields.UUID(allow_none=True, metadata={"description": _MOTHER_ID_DESCRIPTION})

    @validates_schema
    def _member_rules(self, data: dict[str, Any], **_: Any) -> None:
        if set(data) == {"id"}:
            raise ValidationError(NOTHING_TO_CHANGE)
        if "unnamed" in data:
            raise ValidationError({"unnamed": [NAME_LATER]})
        errors = rules.validate_member(data, today=rules.utc_today(), partial=True)
        if errors:
            raise ValidationError(errors)


class MembersPatchIn(StrictSchema):
    """Operations on the household, applied as one change: add, then change, then remove.

    The household that results must satisfy every intake rule (one principal
    applicant, at most 50 members, valid mothers): the service checks it.
    """

    add = fields.List(
        fields.Nested(MemberAddIn),
        validate=validate.Length(max=rules.MAX_MEMBERS),
        metadata={"description": "New members, with the same fields as at intake."},
    )
    change = fields.List(
        fields.Nested(MemberChangeIn),
        validate=validate.Length(max=rules.MAX_MEMBERS),
        metadata={"description": "Partial changes: `id` plus the fields to set; null clears."},
    )
    remove = fields.List(
        fields.UUID(),
        validate=validate.Length(max=rules.MAX_MEMBERS),
        metadata={"description": "Ids of members to remove."},
    )

    @validates_schema
    def _operations(self, data: dict[str, Any], **_: Any) -> None:
        if not any(data.get(name) for name in ("add", "change", "remove")):
            raise ValidationError(NOTHING_TO_CHANGE)
        errors: dict[str, Any] = {}
        changed: set[uuid.UUID] = set()
        for position, change in enumerate(data.get("change", [])):
            if change["id"] in changed:
                errors.setdefault("change", {})[position] = {"id": [CHANGED_TWICE]}
            changed.add(change["id"])
        removed: set[uuid.UUID] = set()
        for position, member_id in enumerate(data.get("remove", [])):
            if member_id in changed:
                errors.setdefault("remove", {})[position] = [CHANGED_AND_REMOVED]
            elif member_id in removed:
                errors.setdefault("remove", {})[position] = [REPEATED]
            removed.add(member_id)
        if errors:
            raise ValidationError(errors)


class CaseUpdateIn(StrictSchema):
    """``PATCH /api/v1/cases/{reference}``: only what changes; send ``If-Match``.

    ``specific_needs`` replaces the whole list. ``members`` holds operations:
    ``{"add": [member, ...], "change": [{"id": ..., field: value, ...}],
    "remove": [id, ...]}``. Stage, office and reference change only through
    the workflow and hand-off endpoints.
    """

    specific_needs = _needs_field()
    members = fields.Nested(MembersPatchIn)

    @validates_schema
    def _not_empty(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError(NOTHING_TO_CHANGE)


class IntakeIn(StrictSchema):
    """``POST /api/v1/cases``: a new household, created at stage ``intake``."""

    office = fields.String(
        validate=_office_code,
        metadata={
            "description": "Owning office code; defaults to the caseworker's office.",
            "example": "amm-01",
        },
    )
    specific_needs = _needs_field(load_default=list)
    members = fields.List(
        fields.Nested(MemberIn),
        required=True,
        validate=validate.Length(
            min=1, max=rules.MAX_MEMBERS, error=f"Between 1 and {rules.MAX_MEMBERS} members."
        ),
        metadata={"description": "The household; exactly one principal_applicant."},
    )

    @validates_schema
    def _household_rules(self, data: dict[str, Any], **_: Any) -> None:
        errors = rules.validate_household(data["members"], today=rules.utc_today())
        if errors:
            raise ValidationError({"members": errors})


class SearchIn(StrictSchema):
    """``POST /api/v1/cases/search``: by a document, or by name and birth year.

    Send exactly one of ``{"document_number", "document_type"?}`` or
    ``{"full_name", "birth_year"}``. Matching is exact on normalised values, the
    same keys duplicate detection uses: case, accents, punctuation, name order,
    given names joined, hyphenated or spaced, and romanisation (RR, McCune-Reischauer,
    passport spellings; common Arabic transliterations) are ignored.
    """

    document_number = Text(max_length=DOCUMENT_NUMBER_MAX)
    document_type = enum_in(DocumentType, "Narrows a document search to one kind.")
    full_name = Text(max_length=NAME_MAX)
    birth_year = StrictInteger(validate=_birth_year)

    @validates_schema
    def _one_way(self, data: dict[str, Any], **_: Any) -> None:
        by_document = "document_number" in data or "document_type" in data
        by_name = "full_name" in data or "birth_year" in data
        if by_document and by_name:
            raise ValidationError(SEARCH_ONE_WAY)
        errors: dict[str, list[str]] = {}
        if by_document and "document_number" not in data:
            errors["document_number"] = [REQUIRED_WITH.format(other="document_type")]
        if by_name and "full_name" not in data:
            errors["full_name"] = [REQUIRED_WITH.format(other="birth_year")]
        if by_name and "birth_year" not in data:
            errors["birth_year"] = [REQUIRED_WITH.format(other="full_name")]
        if not by_document and not by_name:
            raise ValidationError(SEARCH_NO_KEY)
        if errors:
            raise ValidationError(errors)


# --- output schemas -----------------------------------------------------------------------


class DocumentOut(Schema):
    type = _enum_out(DocumentType, "Kind of document.")
    number = fields.String()


class RegistrationRiskOut(Schema):
    exposes_parent = fields.Boolean()
    decision = _enum_out(RegistrationDecision, "What was decided about registration.")
    reason = fields.String()


class MemberOut(Schema):
    id = fields.UUID(metadata={"description": "Stable member id, used by PATCH operations."})
    relationship = _enum_out(Relationship, "Relationship to the principal applicant.")
    sex = _enum_out(Sex, "Sex as recorded.")
    birth_year = fields.Integer(allow_none=True)
    country_of_origin = fields.String(allow_none=True)
    full_name = fields.String(allow_none=True, metadata={"description": "null when unnamed."})
    unnamed = fields.Boolean(metadata={"description": "A child registered before it had a name."})
    other_names = fields.List(fields.String())
    date_of_birth = fields.Date(allow_none=True)
    place_of_birth = fields.String(allow_none=True)
    documents = fields.List(fields.Nested(DocumentOut))
    phone = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    narrative = fields.String(allow_none=True)
    birth_registration = _enum_out(BirthRegistration, "Children only.", allow_none=True)
    nationality_status = _enum_out(NationalityStatus, "Children only.", allow_none=True)
    mother = fields.UUID(allow_none=True, metadata={"description": "Id of the child's mother."})
    registration_risk = fields.Nested(RegistrationRiskOut, allow_none=True)


_REFERENCE_DESCRIPTION = (
    "Random case reference: 10 Crockford base32 symbols and a mod-37 check symbol, "
    "canonical form without hyphens; ABCDE-FGHJK-M and lower case are accepted too."
)


_MATCHED_ON = ["document_number", "name_birth_year", "name_variant"]
_MATCHED_ON_DESCRIPTION = (
    "What matched, never the value: document_number (a shared document number), "
    "name_birth_year (the same name, words in any order and romanisation set aside, "
    "and the same birth year), name_variant (a spelling variant: given name joined, "
    "hyphenated or spaced, family name first or last, another romanisation, or a "
    "birth year off by one)."
)
_SCORE_DESCRIPTION = (
    "How likely the same person, 0-1, from name similarity and agreement on birth "
    "year, sex, documents and household; only scores of at least 0.8 are reported."
)


class DuplicateOut(Schema):
    """A case of your office that may register one of the same people."""

    reference = fields.String(required=True, metadata={"description": _REFERENCE_DESCRIPTION})
    score = fields.Float(required=True, metadata={"description": _SCORE_DESCRIPTION})
    matched_on = fields.List(
        fields.String(validate=validate.OneOf(_MATCHED_ON)),
        required=True,
        metadata={"description": _MATCHED_ON_DESCRIPTION},
    )


class CaseOut(Schema):
    """A whole case, as its readers with access to the office see it."""

    reference = fields.String(
        metadata={"description": _REFERENCE_DESCRIPTION, "example": "0123456789P"}
    )
    office = fields.String(metadata={"description": "Owning office code."})
    stage = _enum_out(Stage, "Where the case is in its life.")
    resettlement_stage = _enum_out(ResettlementStage, "Resettlement progress.")
    specific_needs = fields.List(fields.String(), metadata={"description": "Specific-needs codes."})
    version = fields.Integer(metadata={"description": "Changes with every write; the ETag."})
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    members = fields.List(fields.Nested(MemberOut))
    possible_duplicates = fields.List(
        fields.Nested(DuplicateOut),
        metadata={
            "description": "Only after intake: cases of your office that may register "
            "the same people, best first (other offices are never shown)."
        },
    )
    # Only in a case read: the workflow states and what the caller may do next.
    workflow = fields.Nested("CaseWorkflowOut")
    allowed_transitions = fields.List(
        fields.Nested("AllowedTransitionOut"),
        metadata={"description": "Transitions you may take now (permission held, guards met)."},
    )


class CaseSummaryOut(Schema):
    """A case in a list or search result: no personal data beyond the needs codes."""

    reference = fields.String(metadata={"description": _REFERENCE_DESCRIPTION})
    office = fields.String()
    stage = _enum_out(Stage, "Where the case is in its life.")
    resettlement_stage = _enum_out(ResettlementStage, "Resettlement progress.")
    member_count = fields.Integer()
    specific_needs = fields.List(fields.String())


class HistoryEntryOut(Schema):
    """One access-log entry about a case: who did what, and which fields (never values)."""

    at = fields.DateTime()
    actor = fields.String()
    action = fields.String(metadata={"example": "case.update"})
    fields_ = fields.List(
        fields.String(), data_key="fields", attribute="fields", metadata={"example": ["phone"]}
    )
    role = fields.String(allow_none=True, metadata={"example": "caseworker"})
    office = fields.String(allow_none=True, metadata={"description": "The actor's office."})


# --- query arguments and pages ------------------------------------------------------------


class CaseListArgs(PageArgs):
    """``GET /api/v1/cases`` filters. Unknown parameters are refused, so a mistyped
    filter never silently returns everything.

    ``stage``, ``resettlement_stage`` and ``office`` filter in the database.
    ``specific_need``, ``nationality_status`` and ``birth_registration`` are
    encrypted: the server decrypts that one attribute of the cases in scope,
    page by page, and stops when the page is full or after a bounded scan; a
    page may then hold fewer items than ``limit`` while ``next_cursor`` is set.
    """

    class Meta:
        unknown = RAISE

    stage = enum_in(Stage, "Only cases at this stage.")
    resettlement_stage = enum_in(ResettlementStage, "Only cases at this resettlement stage.")
    office = fields.String(
        validate=_office_code,
        metadata={"description": "Only this office's cases (empty outside your scope)."},
    )
    specific_need = fields.String(
        validate=_need_code, metadata={"description": "Cases with this specific-needs code."}
    )
    nationality_status = enum_in(
        NationalityStatus, "Cases with a child of this nationality status."
    )
    birth_registration = enum_in(
        BirthRegistration, "Cases with a child whose birth registration is at this step."
    )


class CasePageOut(Schema):
    items = fields.List(fields.Nested(CaseSummaryOut), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class SearchOut(Schema):
    """Exact matches in the caller's scope (few by nature: no pagination)."""

    items = fields.List(fields.Nested(CaseSummaryOut), required=True)


class DuplicatesOut(Schema):
    possible_duplicates = fields.List(
        fields.Nested(DuplicateOut),
        required=True,
        metadata={"description": "Cases of your office that may register the same people."},
    )


class HistoryPageOut(Schema):
    items = fields.List(fields.Nested(HistoryEntryOut), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class AlertCaseOut(Schema):
    office = fields.String(required=True)
    reference = fields.String(required=True, metadata={"description": _REFERENCE_DESCRIPTION})


class AlertOut(Schema):
    """Two cases that may register the same person.

    Holders of alerts:cross-office see the pairs that span two offices; office
    staff see only pairs whose two cases are both in their office.
    """

    id = fields.UUID(required=True)
    matched_on = fields.String(
        required=True,
        validate=validate.OneOf(_MATCHED_ON),
        metadata={"description": _MATCHED_ON_DESCRIPTION},
    )
    score = fields.Float(
        required=True,
        allow_none=True,
        metadata={"description": _SCORE_DESCRIPTION + " Null for alerts raised before scores."},
    )
    version = fields.Integer(required=True, metadata={"description": "The ETag's version."})
    created_at = fields.DateTime(required=True)
    cases = fields.List(fields.Nested(AlertCaseOut), required=True)


class AlertPageOut(Schema):
    items = fields.List(fields.Nested(AlertOut), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


# --- erasure requests -----------------------------------------------------------------------

ERASURE_REASON_MAX = 500


class ErasureRequestIn(StrictSchema):
    """``POST /api/v1/cases/{reference}/erasure-requests``: why the case must be erased.

    The reason is sealed under the case's key: it is destroyed with the case.
    """

    reason = Text(max_length=ERASURE_REASON_MAX, multiline=True, required=True)


class ErasureRequestOut(Schema):
    """An erasure request; another supervisor of the office approves (erases) or rejects it."""

    id = fields.UUID()
    reference = fields.String(metadata={"description": _REFERENCE_DESCRIPTION})
    status = _enum_out(codes.ErasureStatus, "pending until decided; expired after its expiry.")
    requested_by = fields.String(metadata={"description": "User id of the requester."})
    requested_at = fields.DateTime()
    expires_at = fields.DateTime()
    decided_by = fields.String(allow_none=True, metadata={"description": "User id."})
    decided_at = fields.DateTime(allow_none=True)
    version = fields.Integer()
    reason = fields.String(
        allow_none=True,
        metadata={"description": "Only when one request is read, and gone once the case is."},
    )


class ErasureRequestPageOut(Schema):
    items = fields.List(fields.Nested(ErasureRequestOut))
    next_cursor = fields.String(allow_none=True)
