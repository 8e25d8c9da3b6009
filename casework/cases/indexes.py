"""The cases' blind indexes: which values are indexed, at how many bits, and lookups.

Two indexes, each over a high-cardinality value (``NEVER_INDEX_ALONE`` fields
such as sex, country or needs codes are never indexed):

``document_number`` (24 bits)
    Each document's number, type-agnostic, normalised and with separators
    removed (``P 123-456`` = ``p123456``). Search latency must not grow with
    the store: every false candidate costs a key unwrap and a decryption. At
    24 bits a lookup among 10^6 members (about 1.5 x 10^6 documents) returns
    ~0.09 false candidates, against ~23 at 16 bits, so a search at 1M cases
    does the same work as at 10k. The price is linkability: with ~16.8 M
    buckets, two rows sharing a value most likely share the number. Document
    numbers are nearly unique per person, so what that reveals is which
    records hold the same document, which is exactly a duplicate. Buckets stay
    shared enough for deniability: at 1.5 x 10^6 rows about 67,000 pairs of
    *different* numbers collide, far more than real duplicates.

``name_birth_year`` (24 bits)
    The order-free skeleton of each name (full name and each other name:
    :func:`casework.cases.names.name_forms`, its sorted word skeletons)
    compounded with the birth year (from ``birth_year`` or ``date_of_birth``);
    members without a year are not indexed by name.

``name_variant`` (24 bits)
    The (family name, given name joined) skeleton pairs of each name, for the
    family name written first and written last, with the birth year. This is
    the key that finds "Minjun KIM" from "Kim Min-jun": separators inside the
    given name and the order of the two parts no longer matter.

Stored entries carry the member's own year; a duplicate lookup probes the
year and its two neighbours (ages of refugees are often estimated), so a
person is found with a year off by one without storing three entries. A name
lookup at 10^5 cases (~3 x 10^5 members, ~10^6 name entries) probes about
nine values per name; at 24 bits that returns ~0.5 false candidates per
intake, against ~9 at 20 bits, and every false candidate costs an unwrap and
a decryption. What 24 bits reveals to a thief of the database is which
members share a name skeleton and birth year (see docs/encryption.md).

Lookups compute the value under every blind-index root in the keyring, so
entries written before a root rotation keep matching until
:func:`recompute_all` has recomputed them under the new root.
"""

from __future__ import annotations

import datetime
import functools
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, bindparam, delete, or_, select
from sqlalchemy.orm import Session, contains_eager

from casework.cases.models import BlindIndexEntry, Case, CaseMember
from casework.cases.names import EmptyName, NameForms, name_forms
from casework.cases.rules import birth_year_of
from casework.security.blind_index import BlindIndexer, normalise
from casework.security.case_keys import SESSION_INFO_KEY as KEY_CACHE
from casework.security.case_keys import data_key_cache
from casework.security.columns import (
    ROW_SEAL_ATTR,
    RowIds,
    read_sealed,
    read_sealed_columns,
    sealed_attributes,
)
from casework.security.envelope import WrappedKey
from casework.security.errors import BlindIndexError
from casework.security.keyring import Keyring
from casework.security.models import CaseKey

DOCUMENT_NUMBER = "document_number"
NAME_BIRTH_YEAR = "name_birth_year"
NAME_VARIANT = "name_variant"
BITS: dict[str, int] = {DOCUMENT_NUMBER: 24, NAME_BIRTH_YEAR: 24, NAME_VARIANT: 24}
#: Birth years a duplicate lookup tries around the stored one.
YEAR_SLACK = 1

# Indexers cache their per-field keys; keep one per keyring, root version and index.
_indexers: weakref.WeakKeyDictionary[Keyring, dict[tuple[int, str], BlindIndexer]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True, slots=True)
class Probe:
    """A value to look up in one index, already reduced to its key parts."""

    index: str
    parts: tuple[str, ...]


def keyring_of(session: Session) -> Keyring:
    """The keyring attached to ``session`` (every request session carries one)."""
    return data_key_cache(session).keyring


def prefetch_keys(session: Session, case_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    """Read the wrapped data keys of many cases with one query; return the case ids found.

    Decrypting a field looks its case's key up with ``session.get``, one
    SELECT per case; the keys read here are primed in the session's key cache
    instead (unwrapped on first use, dropped when the transaction ends).
    """
    ids = list(set(case_ids))
    cache = data_key_cache(session)
    wanted = [case_id for case_id in ids if case_id not in cache]
    if not wanted:
        return ids
    query = select(CaseKey.case_id, CaseKey.kek_id, CaseKey.wrapped_key).where(
        CaseKey.case_id.in_(wanted)
    )
    found = {
        row.case_id: WrappedKey(row.kek_id, bytes(row.wrapped_key))
        for row in session.execute(query)
    }
    cache.prime(found)
    return list(found)


def document_key(number: str) -> str | None:
    """A document number without case, accents or separators; None if nothing is left."""
    return "".join(normalise(number).split()) or None


def name_year_key(full_name: str, year: int) -> tuple[str, str] | None:
    """The order-free name key with the birth year; None for a name without letters."""
    try:
        return (" ".join(name_forms(full_name).tokens), str(year))
    except EmptyName:
        return None


def name_probes(full_name: str, years: Iterable[int]) -> set[Probe]:
    """The name keys of ``full_name`` (both indexes) for each year in ``years``."""
    try:
        forms = name_forms(full_name)
    except EmptyName:
        return set()
    return forms_probes(forms, years)


def forms_probes(forms: NameForms, years: Iterable[int]) -> set[Probe]:
    """:func:`name_probes` of a name whose forms are already computed."""
    tokens = " ".join(forms.tokens)
    probes: set[Probe] = set()
    for year in years:
        probes.add(Probe(NAME_BIRTH_YEAR, (tokens, str(year))))
        for family, given in forms.splits:
            if given:
                probes.add(Probe(NAME_VARIANT, (family, given, str(year))))
    return probes


def member_probes(member: dict[str, Any], *, year_slack: int = 0) -> set[Probe]:
    """The index keys of one member, given as plain values (API field names).

    ``year_slack`` adds the name keys of the neighbouring birth years (for lookups;
    entries are stored with slack 0).
    """
    probes: set[Probe] = set()
    for document in member.get("documents") or ():
        key = document_key(document["number"])
        if key:
            probes.add(Probe(DOCUMENT_NUMBER, (key,)))
    year = birth_year_of(member)
    if year is not None:
        years = range(year - year_slack, year + year_slack + 1)
        for name in [member.get("full_name"), *(member.get("other_names") or ())]:
            if name:
                probes |= name_probes(name, years)
    return probes


#: The member attributes duplicate detection and the index keys read.
PLAIN_FIELDS = ("documents", "full_name", "other_names", "birth_year", "date_of_birth", "sex")


def plain_member(member: CaseMember) -> dict[str, Any]:
    """The attributes of a stored member that duplicate detection reads (decrypts them,
    with the row's key and seal looked up and checked once for all of them)."""
    return read_sealed(member, PLAIN_FIELDS)


def stored_probes(member: CaseMember, *, year_slack: int = 0) -> set[Probe]:
    """The index keys of a stored member (decrypts documents, names and years)."""
    return member_probes(plain_member(member), year_slack=year_slack)


def indexer(keyring: Keyring, index: str, version: int | None = None) -> BlindIndexer:
    """The indexer of ``index`` under root ``version`` (default: the current root)."""
    root_version = version or keyring.blind_index_root().version
    cache = _indexers.setdefault(keyring, {})
    found = cache.get((root_version, index))
    if found is None:
        found = BlindIndexer.from_keyring(keyring, bits=BITS[index], version=root_version)
        cache[(root_version, index)] = found
    return found


def value_of(keyring: Keyring, probe: Probe, version: int | None = None) -> int | None:
    """The index value of ``probe``; None when the value cannot be indexed."""
    try:
        computed = indexer(keyring, probe.index, version)
        if len(probe.parts) == 1:
            return computed.index(probe.index, probe.parts[0])
        return computed.compound(probe.index, probe.parts)
    except BlindIndexError:
        return None


class Values:
    """Index values of probes, each computed once: the HMACs of one intake.

    An intake stores each member's keys at its birth year and then looks the
    same keys up at that year and its neighbours; sharing one :class:`Values`
    computes each (probe, root) HMAC once instead of twice, and normalises each
    key part once (a name's tokens recur in the keys of three years). It holds
    values derived from one request's personal data, so it lives for that
    request only: never keep one in a module, a session or a cache.
    """

    __slots__ = ("_current", "_memo", "_normal", "keyring")

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._current = keyring.blind_index_root().version
        self._memo: dict[tuple[Probe, int], int | None] = {}
        self._normal: dict[str, str] = {}

    def of(self, probe: Probe, version: int | None = None) -> int | None:
        """:func:`value_of` ``probe`` under root ``version`` (default: the current root)."""
        key = (probe, version or self._current)
        try:
            return self._memo[key]
        except KeyError:
            found = self._memo[key] = self._value(probe, key[1])
            return found

    def _value(self, probe: Probe, version: int) -> int | None:
        normal = self._normal
        parts = []
        for part in probe.parts:
            found = normal.get(part)
            if found is None:
                found = normal[part] = normalise(part)
            parts.append(found)
        try:
            return indexer(self.keyring, probe.index, version).normalised(probe.index, parts)
        except BlindIndexError:
            return None


def write_entries(session: Session, keyring: Keyring, member: CaseMember) -> int:
    """Replace ``member``'s entries by those of its current values under the current root."""
    session.execute(delete(BlindIndexEntry).where(BlindIndexEntry.member_id == member.id))
    return add_entries(session, keyring, member, stored_probes(member))


def add_entries(
    session: Session,
    keyring: Keyring,
    member: CaseMember,
    probes: Iterable[Probe],
    known: Values | None = None,
) -> int:
    """Add entries for ``probes`` of a member that has none under the current root yet;
    ``known`` shares the HMACs with the duplicate lookup of the same intake."""
    version = keyring.blind_index_root().version
    known = known or Values(keyring)
    values = {(p.index, v) for p in probes if (v := known.of(p, version)) is not None}
    rows = [
        BlindIndexEntry(
            member=member, case_id=member.case_id, name=name, root_version=version, value=value
        )
        for name, value in sorted(values)
    ]
    session.add_all(rows)
    return len(rows)


def _shape_conditions(shape: tuple[tuple[str, int], ...]) -> list[Any]:
    """One condition per (index, root version) pair of ``shape``, its values bound as
    ``values_<i>`` (an expanding list)."""
    return [
        and_(
            BlindIndexEntry.name == name,
            BlindIndexEntry.root_version == version,
            BlindIndexEntry.value.in_(bindparam(f"values_{i}", expanding=True)),
        )
        for i, (name, version) in enumerate(shape)
    ]


def _hits(shape: tuple[tuple[str, int], ...]) -> Any:
    """The members whose entries match: a materialised CTE over one shape's pairs."""
    conditions = _shape_conditions(shape)
    # One statement. The matching entries are a materialised CTE that drives the
    # join, so the blind-index b-tree leads whatever the planner thinks of the
    # office's size: entries first, then their members by primary key. No ORDER BY
    # in SQL: an index that yields the office's cases in order would tempt the
    # planner to walk the whole office; the few candidates are sorted in Python.
    return (
        select(BlindIndexEntry.member_id)
        .where(or_(*conditions))
        .distinct()
        .cte("hits")
        .prefix_with("MATERIALIZED")
    )


def _filtered(query: Any, office: bool, exclude_office: bool, exclude_case: bool) -> Any:
    query = query.where(Case.erased_at.is_(None))
    if office:
        query = query.where(Case.office_code == bindparam("office"))
    if exclude_office:
        query = query.where(Case.office_code != bindparam("exclude_office"))
    if exclude_case:
        query = query.where(Case.id != bindparam("exclude_case"))
    return query


@functools.lru_cache(maxsize=256)
def _lookup_statement(
    shape: tuple[tuple[str, int], ...], office: bool, exclude_office: bool, exclude_case: bool
) -> Select[CaseMember, str, bytes]:
    """The lookup's statement for one shape: which (index, root) pairs are probed and
    which filters apply; the values, office and case are bound parameters.

    Built once per shape, so an intake neither builds the expression nor computes its
    cache key again (SQLAlchemy memoises both on the statement object). It holds no
    value: ``values_<n>`` (an expanding IN list per pair), ``office``,
    ``exclude_office`` and ``exclude_case`` are supplied at execution.
    """
    hits = _hits(shape)
    query = (
        select(CaseMember, CaseKey.kek_id, CaseKey.wrapped_key)
        .select_from(hits)
        .join(CaseMember, CaseMember.id == hits.c.member_id)
        .join(CaseMember.case)
        .outerjoin(CaseKey, CaseKey.case_id == Case.id)
        .options(contains_eager(CaseMember.case))
    )
    return _filtered(query, office, exclude_office, exclude_case)


def _wanted(
    keyring: Keyring, probes: Iterable[Probe], known: Values | None
) -> dict[tuple[str, int], set[int]]:
    """The values to look for, by (index, root): every probe under every root."""
    known = known or Values(keyring)
    wanted: dict[tuple[str, int], set[int]] = {}
    for probe in set(probes):
        for root in keyring.blind_index_roots:
            value = known.of(probe, root.version)
            if value is not None:
                wanted.setdefault((probe.index, root.version), set()).add(value)
    return wanted


def _parameters(
    shape: tuple[tuple[str, int], ...],
    wanted: dict[tuple[str, int], set[int]],
    filters: dict[str, Any],
) -> dict[str, Any]:
    parameters: dict[str, Any] = {f"values_{i}": sorted(wanted[key]) for i, key in enumerate(shape)}
    parameters.update((name, value) for name, value in filters.items() if value is not None)
    return parameters


def lookup(
    session: Session,
    keyring: Keyring,
    probes: Iterable[Probe],
    *,
    office: str | None = None,
    exclude_office: str | None = None,
    exclude_case: uuid.UUID | None = None,
    known: Values | None = None,
) -> list[CaseMember]:
    """Members whose entries match any probe: candidates, to be confirmed by decrypting.

    ``office`` restricts the lookup to one office's cases in SQL, before any
    row is loaded, so a scoped search never touches another office's data;
    ``exclude_office`` keeps every office but that one (the cross-office scan).
    Erased cases have no entries and are never returned. The candidates' wrapped
    data keys come in the same statement and are primed in the session's key
    cache (unwrapped only when a field is read). ``known``: values already
    computed for this request (:class:`Values`).
    """
    wanted = _wanted(keyring, probes, known)
    if not wanted:
        return []
    shape = tuple(sorted(wanted))
    query = _lookup_statement(
        shape, office is not None, exclude_office is not None, exclude_case is not None
    )
    filters = {"office": office, "exclude_office": exclude_office, "exclude_case": exclude_case}
    parameters = _parameters(shape, wanted, filters)
    members: list[CaseMember] = []
    wrapped: dict[uuid.UUID, WrappedKey] = {}
    for member, kek_id, blob in session.execute(query, parameters):
        members.append(member)
        if blob is not None:
            wrapped[member.case_id] = WrappedKey(kek_id, bytes(blob))
    members.sort(key=lambda m: (m.case.created_at, m.case_id, m.position))
    if wrapped and KEY_CACHE in session.info:  # a session without a keyring decrypts nothing
        data_key_cache(session).prime(wrapped)
    return members


@dataclass(frozen=True, slots=True)
class Candidate:
    """A member a lookup proposed, decrypted for comparison: where it sits (its case's
    reference and registration time, its position) and :data:`PLAIN_FIELDS`."""

    member_id: uuid.UUID
    case_id: uuid.UUID
    position: int
    reference: str
    created_at: datetime.datetime
    plain: dict[str, Any]


@functools.lru_cache(maxsize=256)
def _candidate_statement(
    shape: tuple[tuple[str, int], ...], office: bool, exclude_office: bool, exclude_case: bool
) -> Any:
    """:func:`_lookup_statement` selecting columns, not objects: what
    :func:`candidates` decrypts (the member's sealed columns and seal, its case's
    reference and time, the wrapped key), with the same joins, filters and bound values."""
    hits = _hits(shape)
    query = (
        select(*_candidate_columns(), Case.reference, Case.created_at)
        .select_from(hits)
        .join(CaseMember, CaseMember.id == hits.c.member_id)
        .join(Case, Case.id == CaseMember.case_id)
        .outerjoin(CaseKey, CaseKey.case_id == Case.id)
    )
    return _filtered(query, office, exclude_office, exclude_case)


@functools.cache
def _candidate_columns() -> tuple[Any, ...]:
    return (
        CaseMember.id,
        CaseMember.case_id,
        CaseMember.position,
        *sealed_attributes(CaseMember),
        CaseKey.kek_id,
        CaseKey.wrapped_key,
    )


def candidates(
    session: Session,
    keyring: Keyring,
    probes: Iterable[Probe],
    *,
    office: str | None = None,
    exclude_office: str | None = None,
    exclude_case: uuid.UUID | None = None,
    known: Values | None = None,
    fields: tuple[str, ...] = PLAIN_FIELDS,
) -> list[Candidate]:
    """:func:`lookup`'s members (same filters, same order), decrypted for duplicate
    detection without loading them as objects: each row's seal is checked and
    ``fields`` (some of :data:`PLAIN_FIELDS`) opened under its case's key, read in the
    same statement."""
    wanted = _wanted(keyring, probes, known)
    if not wanted:
        return []
    shape = tuple(sorted(wanted))
    query = _candidate_statement(
        shape, office is not None, exclude_office is not None, exclude_case is not None
    )
    filters = {"office": office, "exclude_office": exclude_office, "exclude_case": exclude_case}
    rows = _rows(session, query, _parameters(shape, wanted, filters))
    if not rows:
        return []
    rows.sort(key=lambda row: (row.created_at, row.case_id, row.position))
    return _decrypted(session, rows, fields)


#: Most values one statement of :func:`candidates_each` binds (SQLite's limit is 32,766
#: variables): lookups beyond it go to a further statement, each lookup whole in one.
MAX_BOUND_VALUES = 5000


def _hit_entries(shape: tuple[tuple[str, int], ...], own: bool, peers: bool) -> Any:
    """:func:`_hits` keeping which entry matched: (member, index, root, value) rows.
    ``own``: not the entries of the cases bound as ``own``; ``peers``: every entry of the
    members bound as ``peers``."""
    conditions = _shape_conditions(shape)
    where = or_(*conditions)
    if own:
        where = and_(where, BlindIndexEntry.case_id.not_in(bindparam("own", expanding=True)))
    if peers:
        where = or_(where, BlindIndexEntry.member_id.in_(bindparam("peers", expanding=True)))
    return (
        select(
            BlindIndexEntry.member_id,
            BlindIndexEntry.name,
            BlindIndexEntry.root_version,
            BlindIndexEntry.value,
        )
        .where(where)
        .cte("hits")
        .prefix_with("MATERIALIZED")
    )


@functools.lru_cache(maxsize=256)
def _each_statement(
    shape: tuple[tuple[str, int], ...], office: bool, own: bool, peers: bool
) -> Any:
    """:func:`_candidate_statement` for many lookups at once: each row also names the
    entry that matched (a member matching several entries comes once per entry), so
    each lookup keeps the members its own values found. No ``exclude_case``: each
    lookup drops its own case in Python."""
    hits = _hit_entries(shape, own, peers)
    query = (
        select(
            *_candidate_columns(),
            Case.reference,
            Case.created_at,
            hits.c.name.label("hit_name"),
            hits.c.root_version.label("hit_root"),
            hits.c.value.label("hit_value"),
        )
        .select_from(hits)
        .join(CaseMember, CaseMember.id == hits.c.member_id)
        .join(Case, Case.id == CaseMember.case_id)
        .outerjoin(CaseKey, CaseKey.case_id == Case.id)
    )
    return _filtered(query, office, False, False)


#: An entry as :func:`candidates_each` is told of one just written: (member id, case id,
#: index, root version, value).
Written = tuple[uuid.UUID, uuid.UUID, str, int, int]


def candidates_each(
    session: Session,
    keyring: Keyring,
    lookups: Sequence[tuple[Iterable[Probe], uuid.UUID]],
    *,
    office: str | None = None,
    known: Values | None = None,
    fields: tuple[str, ...] = PLAIN_FIELDS,
    written: Sequence[Written] = (),
) -> list[list[Candidate]]:
    """:func:`candidates` of many lookups (each: its probes and the case it excludes) in
    one office, with one statement: for each, the same members in the same order as its
    own :func:`candidates` call (``exclude_case`` its case). A member that several
    lookups propose is read and decrypted once.

    For the creates of one request, written together: they find each other (each
    other's entries are stored), never themselves. ``written``: every entry of cases
    just written (all of each case's entries: those cases have no other), which the
    lookups' own cases usually are. The statement then leaves their entries out, since
    a case's own values find it first of all, and asks instead for the members of those
    cases that another lookup's values find, as the entries in hand tell.
    """
    known = known or Values(keyring)
    wants = [_wanted(keyring, probes, known) for probes, _ in lookups]
    found: list[list[Candidate]] = [[] for _ in lookups]
    chunk: list[int] = []
    bound = 0
    for position, wanted in enumerate(wants):
        size = sum(len(values) for values in wanted.values())
        if chunk and bound + size > MAX_BOUND_VALUES:
            _each_chunk(session, lookups, wants, chunk, office, fields, written, found)
            chunk, bound = [], 0
        if wanted:
            chunk.append(position)
            bound += size
    if chunk:
        _each_chunk(session, lookups, wants, chunk, office, fields, written, found)
    return found


def _each_chunk(
    session: Session,
    lookups: Sequence[tuple[Iterable[Probe], uuid.UUID]],
    wants: Sequence[dict[tuple[str, int], set[int]]],
    chunk: Sequence[int],
    office: str | None,
    fields: tuple[str, ...],
    written: Sequence[Written],
    found: list[list[Candidate]],
) -> None:
    """One statement for the lookups at ``chunk``; fills their places in ``found``."""
    union: dict[tuple[str, int], set[int]] = {}
    # Each value a lookup wants: the case of the lookup that wants it, None for several.
    wanted_by: dict[tuple[str, int, int], uuid.UUID | None] = {}
    for position in chunk:
        case_id = lookups[position][1]
        for key, values in wants[position].items():
            union.setdefault(key, set()).update(values)
            if written:
                for value in values:
                    if wanted_by.setdefault((*key, value), case_id) != case_id:
                        wanted_by[(*key, value)] = None
    own = sorted({case_id for _, case_id, _, _, _ in written})
    peers = sorted(
        {
            member_id
            for member_id, case_id, name, root, value in written
            if wanted_by.get((name, root, value), case_id) != case_id
        }
    )
    shape = tuple(sorted(union))
    query = _each_statement(shape, office is not None, bool(own), bool(peers))
    parameters = _parameters(shape, union, {"office": office})
    if own:
        parameters["own"] = own
    if peers:
        parameters["peers"] = peers
    rows = _rows(session, query, parameters)
    by_entry: dict[tuple[str, int, int], list[Any]] = {}
    for row in rows:
        by_entry.setdefault((row.hit_name, row.hit_root, row.hit_value), []).append(row)
    kept: list[list[Any]] = []
    needed: dict[uuid.UUID, Any] = {}
    for position in chunk:
        exclude = lookups[position][1]
        members: dict[uuid.UUID, Any] = {}
        for (name, root), values in wants[position].items():
            for value in values:
                for row in by_entry.get((name, root, value), ()):
                    if row.case_id != exclude:
                        members[row.id] = row
        ordered = sorted(
            members.values(), key=lambda row: (row.created_at, row.case_id, row.position)
        )
        kept.append(ordered)
        for row in ordered:
            needed.setdefault(row.id, row)
    opened = {
        candidate.member_id: candidate
        for candidate in _decrypted(session, list(needed.values()), fields)
    }
    for position, ordered in zip(chunk, kept, strict=True):
        found[position] = [opened[row.id] for row in ordered]


def household(session: Session, case_id: uuid.UUID) -> list[dict[str, Any]]:
    """:data:`PLAIN_FIELDS` of every member of a case, in position order (decrypted)."""
    rows = _rows(session, _household_statement(), {"case_id": case_id})
    return [candidate.plain for candidate in _decrypted(session, rows)]


def _rows(session: Session, query: Any, parameters: dict[str, Any]) -> list[Any]:
    """``query``'s rows, run on the session's connection: plain columns need none of the
    ORM's result machinery. Pending changes are flushed first, as a query would."""
    session.flush()
    return list(session.connection().execute(query, parameters))


@functools.cache
def _household_statement() -> Any:
    return (
        select(*_candidate_columns(), Case.reference, Case.created_at)
        .join(Case, Case.id == CaseMember.case_id)
        .outerjoin(CaseKey, CaseKey.case_id == Case.id)
        .where(CaseMember.case_id == bindparam("case_id"))
        .order_by(CaseMember.position)
    )


def _decrypted(
    session: Session, rows: Sequence[Any], fields: tuple[str, ...] = PLAIN_FIELDS
) -> list[Candidate]:
    cache = data_key_cache(session)
    cache.prime(
        {
            row.case_id: WrappedKey(row.kek_id, bytes(row.wrapped_key))
            for row in rows
            if row.wrapped_key is not None and row.case_id not in cache
        }
    )
    found = []
    for row in rows:
        columns = row._mapping
        ids = RowIds(row.case_id, row.id)
        plain = read_sealed_columns(
            session, CaseMember, ids, columns[ROW_SEAL_ATTR], columns, fields
        )
        found.append(
            Candidate(row.id, row.case_id, row.position, row.reference, row.created_at, plain)
        )
    return found


def recompute_all(
    session: Session,
    keyring: Keyring,
    *,
    batch_size: int = 200,
    on_batch: Callable[[], None] | None = None,
) -> int:
    """Recompute every member's entries under the keyring's current root; return the count.

    Works through the cases in id order, ``batch_size`` at a time, and calls
    ``on_batch`` after each batch (a command passes a commit, so a long run
    is resumable and holds no long transaction); the function itself never
    commits. Entries of older roots are deleted as each member is redone;
    lookups read every root in the keyring, so searches keep working during
    the run. Drop the old root from the keyring only after it finished.
    """
    written = 0
    after: uuid.UUID | None = None
    while True:
        query = select(Case.id).where(Case.erased_at.is_(None)).order_by(Case.id)
        if after is not None:
            query = query.where(Case.id > after)
        case_ids: Sequence[uuid.UUID] = session.scalars(query.limit(batch_size)).all()
        if not case_ids:
            return written
        members = session.scalars(select(CaseMember).where(CaseMember.case_id.in_(case_ids)))
        for member in members:
            written += write_entries(session, keyring, member)
        session.flush()
        after = case_ids[-1]
        if on_batch is not None:
            on_batch()
            session.expunge_all()  # committed: keep memory flat over a million cases
