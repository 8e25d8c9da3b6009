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

``name_birth_year`` (20 bits)
    ``names.name_key`` of the full name and of each other name, compounded
    with the birth year (from ``birth_year`` or ``date_of_birth``); members
    without a year are not indexed by name. Common names with a common year
    are shared by different people anyway, so equality leaks less than for
    documents and the index can stay coarser: ~3 false candidates at 3 x 10^6
    name rows, ~0.03 at 10^4 cases. Name search is the rarer path (duplicate checks
    and searches by name), and those candidates are a few decryptions.

Lookups compute the value under every blind-index root in the keyring, so
entries written before a root rotation keep matching until
:func:`recompute_all` has recomputed them under the new root.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session, contains_eager

from casework.cases.models import BlindIndexEntry, Case, CaseMember
from casework.cases.names import EmptyName, name_key
from casework.cases.rules import birth_year_of
from casework.security.blind_index import BlindIndexer, normalise
from casework.security.case_keys import data_key_cache
from casework.security.envelope import WrappedKey
from casework.security.errors import BlindIndexError
from casework.security.keyring import Keyring
from casework.security.models import CaseKey

DOCUMENT_NUMBER = "document_number"
NAME_BIRTH_YEAR = "name_birth_year"
BITS: dict[str, int] = {DOCUMENT_NUMBER: 24, NAME_BIRTH_YEAR: 20}

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
        return (name_key(full_name), str(year))
    except EmptyName:
        return None


def member_probes(member: dict[str, Any]) -> set[Probe]:
    """The index keys of one member, given as plain values (API field names)."""
    probes: set[Probe] = set()
    for document in member.get("documents") or ():
        key = document_key(document["number"])
        if key:
            probes.add(Probe(DOCUMENT_NUMBER, (key,)))
    year = birth_year_of(member)
    if year is not None:
        for name in [member.get("full_name"), *(member.get("other_names") or ())]:
            parts = name_year_key(name, year) if name else None
            if parts:
                probes.add(Probe(NAME_BIRTH_YEAR, parts))
    return probes


def stored_probes(member: CaseMember) -> set[Probe]:
    """The index keys of a stored member (decrypts documents, names and years)."""
    return member_probes(
        {
            "documents": member.documents,
            "full_name": member.full_name,
            "other_names": member.other_names,
            "birth_year": member.birth_year,
            "date_of_birth": member.date_of_birth,
        }
    )


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


def write_entries(session: Session, keyring: Keyring, member: CaseMember) -> int:
    """Replace ``member``'s entries by those of its current values under the current root."""
    session.execute(delete(BlindIndexEntry).where(BlindIndexEntry.member_id == member.id))
    return add_entries(session, keyring, member, stored_probes(member))


def add_entries(
    session: Session, keyring: Keyring, member: CaseMember, probes: Iterable[Probe]
) -> int:
    """Add entries for ``probes`` of a member that has none under the current root yet."""
    version = keyring.blind_index_root().version
    values = {(p.index, v) for p in probes if (v := value_of(keyring, p)) is not None}
    rows = [
        BlindIndexEntry(
            member=member, case_id=member.case_id, name=name, root_version=version, value=value
        )
        for name, value in sorted(values)
    ]
    session.add_all(rows)
    return len(rows)


def lookup(
    session: Session,
    keyring: Keyring,
    probes: Iterable[Probe],
    *,
    office: str | None = None,
    exclude_case: uuid.UUID | None = None,
) -> list[CaseMember]:
    """Members whose entries match any probe: candidates, to be confirmed by decrypting.

    ``office`` restricts the lookup to one office's cases in SQL, before any
    row is loaded, so a scoped search never touches another office's data.
    Erased cases have no entries and are never returned.
    """
    conditions = [
        and_(
            BlindIndexEntry.name == probe.index,
            BlindIndexEntry.root_version == root.version,
            BlindIndexEntry.value == value,
        )
        for probe in set(probes)
        for root in keyring.blind_index_roots
        if (value := value_of(keyring, probe, root.version)) is not None
    ]
    if not conditions:
        return []
    # Two steps, so that the blind-index b-tree drives the lookup whatever the
    # planner thinks of the office's size: matching entries first, then their rows.
    member_ids = set(session.scalars(select(BlindIndexEntry.member_id).where(or_(*conditions))))
    if not member_ids:
        return []
    query = (
        select(CaseMember)
        .join(CaseMember.case)
        .options(contains_eager(CaseMember.case))
        .where(CaseMember.id.in_(member_ids), Case.erased_at.is_(None))
        .order_by(Case.created_at, CaseMember.position)
    )
    if office is not None:
        query = query.where(Case.office_code == office)
    if exclude_case is not None:
        query = query.where(Case.id != exclude_case)
    return list(session.scalars(query).unique())


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
