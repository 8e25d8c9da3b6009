"""Counting a report's atoms from ciphertext: the only place reports decrypt.

The service reads, for each case, its wrapped data key and the ciphertext of
only the attributes the report uses, as plain tuples; this module unwraps the
key, decrypts those attributes and adds the person (or event) to one atom
``(office, month, cell)``. What leaves a batch is a :class:`~collections.Counter`
of atoms: no per-person value crosses a process boundary, reaches a log or an
error (a row that fails to decrypt is counted under ``unreadable`` and its
error text is dropped).

Large reports run the batches in worker processes (``spawn``: nothing of the
web process, its threads or its connections is inherited), which receive the
material of the KEKs that wrap the keys and the specific-needs families once,
at start; small ones run in the calling process.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from casework.reports.codes import CHILD_BANDS, NO_CATEGORY, NO_NEEDS, ReportName, age_band
from casework.reports.suppression import Atom
from casework.security.codecs import JSON
from casework.security.envelope import (
    DataKey,
    WrappedKey,
    field_aad_ids,
    field_aad_prefix,
    open_with_aad,
    unwrap_data_key,
)
from casework.security.keyring import Kek, Keyring, KeyState

UNREADABLE = "unreadable"
"""The cell value of a row that could not be decrypted (counted, never explained)."""

# (table, column) of every attribute a report may decrypt, and how to decode it.
MEMBER_TABLE = "case_members"
CASE_TABLE = "cases"
EVENT_TABLE = "report_events"

CaseRow = tuple[bytes, str, bytes, str, str, Any, list[tuple[Any, ...]]]
"""(case id, KEK id, wrapped key, office, month, case-level blob, [(row id, blobs...)])."""


@dataclass(frozen=True)
class CountContext:
    """What a batch needs besides its rows: KEKs, needs families, the year ages are taken at."""

    keks: Mapping[str, tuple[str, bytes]]
    families: Mapping[str, str]
    reference_year: int

    def ring(self) -> _Ring:
        return _Ring(self.keks)


class _Ring:
    """The part of a keyring :func:`unwrap_data_key` uses: KEKs by id."""

    def __init__(self, keks: Mapping[str, tuple[str, bytes]]) -> None:
        created = datetime(2000, 1, 1, tzinfo=UTC)
        self._keks = {
            kek_id: Kek(kek_id, KeyState(state), created, material)
            for kek_id, (state, material) in keks.items()
        }

    def kek(self, kek_id: str) -> Kek:
        return self._keks[kek_id]


_PREFIXES: dict[tuple[str, str], bytes] = {}


def _open(
    key: DataKey, table: str, column: str, case_id: uuid.UUID, row_id: uuid.UUID, blob: Any
) -> Any:
    """Decrypt and decode one sealed JSON attribute (see casework.security.columns)."""
    if blob is None:
        return None
    prefix = _PREFIXES.get((table, column))
    if prefix is None:
        prefix = _PREFIXES[(table, column)] = field_aad_prefix(table, column)
    plain = open_with_aad(key, bytes(blob), prefix + field_aad_ids(case_id, row_id))
    return JSON.decode(plain)


def _key(ring: _Ring, case_id: uuid.UUID, kek_id: str, wrapped: bytes) -> DataKey:
    material = unwrap_data_key(cast(Keyring, ring), WrappedKey(kek_id, bytes(wrapped)), case_id)
    return DataKey(material)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "unknown"


PEOPLE = ReportName.PEOPLE_BY_SEX_AGE_NEEDS.value
CHILDREN = ReportName.CHILDREN_BY_REGISTRATION_NATIONALITY.value
Counts = dict[str, Counter[Atom]]


def _persons(ctx: CountContext, ring: _Ring, row: CaseRow, out: Counts) -> None:
    """One household: each member into the people report, each child into the children's."""
    case_bytes, kek_id, wrapped, office, month, needs_blob, members = row
    case_id = uuid.UUID(bytes=case_bytes)
    key = _key(ring, case_id, kek_id, wrapped)
    needs = _open(key, CASE_TABLE, "specific_needs", case_id, case_id, needs_blob) or []
    families = sorted({ctx.families.get(code, UNREADABLE) for code in needs}) or [NO_NEEDS]
    for member_bytes, sex_blob, year_blob, registration_blob, nationality_blob in members:
        member_id = uuid.UUID(bytes=member_bytes)
        sex = _text(_open(key, MEMBER_TABLE, "sex", case_id, member_id, sex_blob))
        year = _open(key, MEMBER_TABLE, "birth_year", case_id, member_id, year_blob)
        band = age_band(year if isinstance(year, int) else None, ctx.reference_year).value
        for family in families:
            out[PEOPLE][(office, month, (sex, band, family))] += 1
        if band not in CHILD_BANDS:
            continue
        registration = _open(
            key, MEMBER_TABLE, "birth_registration", case_id, member_id, registration_blob
        )
        nationality = _open(
            key, MEMBER_TABLE, "nationality_status", case_id, member_id, nationality_blob
        )
        out[CHILDREN][(office, month, (_text(registration), _text(nationality)))] += 1


_EVENT_REPORTS = {
    "funnel": ReportName.RESETTLEMENT_FUNNEL.value,
    "decision": ReportName.DECISION_OUTCOMES.value,
}


def _events(ctx: CountContext, ring: _Ring, row: CaseRow, out: Counts) -> None:
    """Events of one case; each event carries its own month."""
    case_bytes, kek_id, wrapped, office, _, kind, events = row
    case_id = uuid.UUID(bytes=case_bytes)
    key = _key(ring, case_id, kek_id, wrapped)
    target = out[_EVENT_REPORTS[kind]]
    for event_bytes, month, blob in events:
        details = _open(key, EVENT_TABLE, "details", case_id, uuid.UUID(bytes=event_bytes), blob)
        if not isinstance(details, dict) or details.get("kind") != kind:
            continue
        if kind == "funnel":
            for category in details.get("categories") or [NO_CATEGORY]:
                target[(office, month, (_text(category), _text(details.get("step"))))] += 1
        else:
            cell = (_text(details.get("decision")), _text(details.get("outcome")))
            target[(office, month, cell)] += 1


COUNTERS: dict[str, Callable[[CountContext, _Ring, CaseRow, Counts], None]] = {
    "persons": _persons,
    "funnel": _events,
    "decision": _events,
}
_UNREADABLE_CELL = {
    "persons": (PEOPLE, (UNREADABLE,) * 3),
    "funnel": (_EVENT_REPORTS["funnel"], (UNREADABLE,) * 2),
    "decision": (_EVENT_REPORTS["decision"], (UNREADABLE,) * 2),
}


def count_batch(ctx: CountContext, kind: str, rows: Sequence[CaseRow]) -> Counts:
    """The atoms of ``rows`` per report; a case that fails to decrypt counts once as
    ``unreadable`` (its error text is dropped: it could carry a value)."""
    counter = COUNTERS[kind]
    ring = ctx.ring()
    out: Counts = defaultdict(Counter)
    for row in rows:
        one: Counts = defaultdict(Counter)
        try:
            counter(ctx, ring, row, one)
        except Exception:
            name, cell = _UNREADABLE_CELL[kind]
            month = row[4] or (row[6][0][1] if kind != "persons" and row[6] else "")
            one = defaultdict(Counter, {name: Counter({(row[3], month, cell): 1})})
        for name, atoms in one.items():
            out[name].update(atoms)
    return dict(out)


# --- worker processes ----------------------------------------------------------------------

_worker_context: CountContext | None = None


def init_worker(ctx: CountContext) -> None:
    """Process-pool initialiser: keep the context for every batch of this worker."""
    global _worker_context  # one context per worker process, set once at its start
    _worker_context = ctx


def count_in_worker(kind: str, rows: Sequence[CaseRow]) -> Counts:
    """:func:`count_batch` with the context :func:`init_worker` kept."""
    if _worker_context is None:
        raise RuntimeError("worker not initialised")
    return count_batch(_worker_context, kind, rows)


def batched(rows: Iterable[CaseRow], size: int) -> Iterator[list[CaseRow]]:
    batch: list[CaseRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
