"""Counting a report's atoms from ciphertext: the only place reports decrypt.

The service reads, for each case, its wrapped data key and the ciphertext of
only the attributes the report uses, as plain tuples; this module unwraps the
key, decrypts those attributes and adds the person (or event) to one atom
``(office, month, cell)``. What leaves a batch is a :class:`~collections.Counter`
of atoms: no per-person value crosses a process boundary, reaches a log or an
error (a row that fails to decrypt is counted under ``unreadable`` and its
error text is dropped).

Large reports run the batches in worker processes (forked from a clean
``forkserver`` process, never from the web process: nothing of its threads or
connections is inherited), which receive the material of the KEKs that wrap
the keys and the specific-needs families once, at start; small ones run in the
calling process.
"""

from __future__ import annotations

import time
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
"""(case id bytes, KEK id, wrapped key, office, month, case-level blob or event kind,
[(row id bytes, blobs...)])."""


@dataclass(frozen=True)
class CountContext:
    """What a batch needs besides its rows: KEKs, needs families, the year ages are taken at."""

    keks: Mapping[str, tuple[str, bytes]]
    families: Mapping[str, str]
    reference_year: int

    def ring(self) -> _Ring:
        return _Ring(self.keks)

    def band(self, birth_year: Any) -> str:
        """The age band of a decoded birth year (a value of any type: only ints count)."""
        year = birth_year if isinstance(birth_year, int) else None
        band = _BANDS.get((year, self.reference_year))
        if band is None:
            band = _BANDS[(year, self.reference_year)] = age_band(year, self.reference_year).value
        return band


_BANDS: dict[tuple[int | None, int], str] = {}


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
_UUID_FRAME = (16).to_bytes(4, "big")
_DECODED: dict[bytes, Any] = {}
_DECODED_MAX = 20_000
"""Decoded plaintexts by their padded bytes: the counted attributes take few values
(sex, birth years, codes), so each is parsed once per process, not once per person."""


def _aad_ids(case_id: bytes, row_id: bytes) -> bytes:
    """:func:`casework.security.envelope.field_aad_ids` from raw id bytes (no UUID objects)."""
    return _UUID_FRAME + case_id + _UUID_FRAME + row_id


def _open(key: DataKey, table: str, column: str, case_id: bytes, row_id: bytes, blob: Any) -> Any:
    """Decrypt and decode one sealed JSON attribute (see casework.security.columns).

    The caller must not change the value returned: it may be shared (cached).
    """
    if blob is None:
        return None
    prefix = _PREFIXES.get((table, column))
    if prefix is None:
        prefix = _PREFIXES[(table, column)] = field_aad_prefix(table, column)
    plain = open_with_aad(key, bytes(blob), prefix + _aad_ids(case_id, row_id))
    try:
        return _DECODED[plain]
    except KeyError:
        value = JSON.decode(plain)
        if len(_DECODED) < _DECODED_MAX:
            _DECODED[plain] = value
        return value


def _key(ring: _Ring, case_id: bytes, kek_id: str, wrapped: bytes) -> DataKey:
    material = unwrap_data_key(
        cast(Keyring, ring), WrappedKey(kek_id, bytes(wrapped)), uuid.UUID(bytes=case_id)
    )
    return DataKey(material)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "unknown"


PEOPLE = ReportName.PEOPLE_BY_SEX_AGE_NEEDS.value
CHILDREN = ReportName.CHILDREN_BY_REGISTRATION_NATIONALITY.value
Counts = dict[str, Counter[Atom]]
Found = dict[str, list[Atom]]


def _persons(ctx: CountContext, ring: _Ring, row: CaseRow, out: Found) -> None:
    """One household: each member into the people report, each child into the children's."""
    case_id, kek_id, wrapped, office, month, needs_blob, members = row
    key = _key(ring, case_id, kek_id, wrapped)
    needs = _open(key, CASE_TABLE, "specific_needs", case_id, case_id, needs_blob) or []
    families = sorted({ctx.families.get(code, UNREADABLE) for code in needs}) or [NO_NEEDS]
    people, children = out[PEOPLE], out[CHILDREN]
    for member_id, sex_blob, year_blob, registration_blob, nationality_blob in members:
        sex = _text(_open(key, MEMBER_TABLE, "sex", case_id, member_id, sex_blob))
        band = ctx.band(_open(key, MEMBER_TABLE, "birth_year", case_id, member_id, year_blob))
        for family in families:
            people.append((office, month, (sex, band, family)))
        if band not in CHILD_BANDS:
            continue
        registration = _open(
            key, MEMBER_TABLE, "birth_registration", case_id, member_id, registration_blob
        )
        nationality = _open(
            key, MEMBER_TABLE, "nationality_status", case_id, member_id, nationality_blob
        )
        children.append((office, month, (_text(registration), _text(nationality))))


_EVENT_REPORTS = {
    "funnel": ReportName.RESETTLEMENT_FUNNEL.value,
    "decision": ReportName.DECISION_OUTCOMES.value,
}


def _events(ctx: CountContext, ring: _Ring, row: CaseRow, out: Found) -> None:
    """Events of one case; each event carries its own month."""
    case_id, kek_id, wrapped, office, _, kind, events = row
    key = _key(ring, case_id, kek_id, wrapped)
    target = out[_EVENT_REPORTS[kind]]
    for event_id, month, blob in events:
        details = _open(key, EVENT_TABLE, "details", case_id, event_id, blob)
        if not isinstance(details, dict) or details.get("kind") != kind:
            continue
        if kind == "funnel":
            for category in details.get("categories") or [NO_CATEGORY]:
                target.append((office, month, (_text(category), _text(details.get("step")))))
        else:
            cell = (_text(details.get("decision")), _text(details.get("outcome")))
            target.append((office, month, cell))


COUNTERS: dict[str, Callable[[CountContext, _Ring, CaseRow, Found], None]] = {
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
        found: Found = defaultdict(list)
        try:
            counter(ctx, ring, row, found)
        except Exception:
            name, cell = _UNREADABLE_CELL[kind]
            month = row[4] or (row[6][0][1] if kind != "persons" and row[6] else "")
            found = {name: [(row[3], month, cell)]}
        for name, atoms in found.items():
            counts = out[name]
            for atom in atoms:
                counts[atom] += 1
    return dict(out)


# --- worker processes ----------------------------------------------------------------------

_worker_context: CountContext | None = None


def init_worker(ctx: CountContext) -> None:
    """Process-pool initialiser: keep the context for every batch of this worker."""
    global _worker_context  # one context per worker process, set once at its start
    _worker_context = ctx


def count_in_worker(kind: str, rows: Sequence[CaseRow]) -> tuple[Counts, float]:
    """:func:`count_batch` with the context :func:`init_worker` kept, and the CPU seconds
    it took (what a benchmark adds up: the worker is no child of the caller)."""
    if _worker_context is None:
        raise RuntimeError("worker not initialised")
    started = time.process_time()
    counts = count_batch(_worker_context, kind, rows)
    return counts, time.process_time() - started


def batched(rows: Iterable[CaseRow], size: int) -> Iterator[list[CaseRow]]:
    batch: list[CaseRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
