"""Counting a report's atoms from ciphertext: the only place reports decrypt.

The rows of a report are read one slice of cases at a time (a range of case
ids, bounds from :func:`chunks`) by a statement the service compiles once:
for each case its wrapped data key, and the ciphertext of only the attributes
the report uses, as the driver returns them. A :class:`Reader` unwraps the
key, decrypts those attributes with the case's AES-GCM cipher (the associated
data of each attribute framed once per run, only the ids per row) and adds the
person (or event) to one atom ``(office, month, cell)``. What leaves a slice is
a :class:`~collections.Counter` of atoms: no per-person value crosses a process
boundary, reaches a log or an error (a case that fails to decrypt is counted
under ``unreadable`` and its error text is dropped).

Large reports run the slices in worker processes (forked from a clean
``forkserver`` process, never from the web process: nothing of its threads or
connections is inherited). Each worker receives the material of the KEKs that
wrap the keys, the specific-needs families and the database's address once, at
start, opens its own connection and reads its slices itself, so the calling
process ships no ciphertext and both cores decrypt; small reports run in the
calling process on its session's connection.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from multiprocessing.util import Finalize
from operator import itemgetter
from typing import Any, cast

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import create_engine
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from casework.reports.codes import CHILD_BANDS, NO_CATEGORY, NO_NEEDS, ReportName, age_band
from casework.reports.suppression import Atom
from casework.security.codecs import JSON
from casework.security.envelope import (
    FIELD_HEADER_BYTES,
    NONCE_BYTES,
    WrappedKey,
    field_aad_prefix,
    unwrap_data_key,
)
from casework.security.keyring import Kek, Keyring, KeyState

UNREADABLE = "unreadable"
"""The cell value of a row that could not be decrypted (counted, never explained)."""
UNKNOWN = "unknown"

MEMBER_TABLE = "case_members"
CASE_TABLE = "cases"
EVENT_TABLE = "report_events"

PEOPLE = ReportName.PEOPLE_BY_SEX_AGE_NEEDS.value
CHILDREN = ReportName.CHILDREN_BY_REGISTRATION_NATIONALITY.value
EVENT_REPORTS = {
    "funnel": ReportName.RESETTLEMENT_FUNNEL.value,
    "decision": ReportName.DECISION_OUTCOMES.value,
}
Counts = dict[str, Counter[Atom]]

PERSON_COLUMNS = ("sex", "birth_year", "birth_registration", "nationality_status")
"""The member attributes the people and children reports decrypt, in the order read."""

_NONCE_START = FIELD_HEADER_BYTES
_SEALED_START = FIELD_HEADER_BYTES + NONCE_BYTES
_UUID_FRAME = (16).to_bytes(4, "big")
_CACHE_MAX = 20_000
_FIRST = itemgetter(0)


@dataclass(frozen=True)
class CountContext:
    """What a slice needs besides its rows: KEKs, needs families, the year ages are taken at."""

    keks: Mapping[str, tuple[str, bytes]]
    families: Mapping[str, str]
    reference_year: int


@dataclass(frozen=True)
class Statement:
    """A compiled SELECT of one slice: driver SQL with the bounds ``lo`` and ``hi`` (case ids,
    inclusive) as parameters, in the driver's parameter style."""

    sql: str
    positional: tuple[str, ...] | None

    def params(self, lo: Any, hi: Any) -> tuple[Any, ...] | dict[str, Any]:
        values = {"lo": lo, "hi": hi}
        if self.positional is None:
            return values
        return tuple(values[name] for name in self.positional)


Bounds = tuple[Any, Any]


def chunks(ids: Sequence[Any], size: int) -> list[Bounds]:
    """Inclusive (first, last) case ids of consecutive slices of ``size`` of the sorted ``ids``."""
    ends = range(0, len(ids), size)
    return [(ids[start], ids[min(start + size, len(ids)) - 1]) for start in ends]


def fetch(connection: Any, statement: Statement, bounds: Bounds) -> list[tuple[Any, ...]]:
    """The rows of one slice, read on a DB-API ``connection`` (no SQLAlchemy row objects)."""
    cursor = connection.cursor()
    try:
        cursor.execute(statement.sql, statement.params(*bounds))
        return cast(list[tuple[Any, ...]], cursor.fetchall())
    finally:
        cursor.close()


def month_of(moment: datetime | str) -> str:
    """``YYYY-MM`` of a stored time: a datetime, or SQLite's text read without conversion."""
    if isinstance(moment, str):
        return moment[:7]
    return f"{moment.year:04d}-{moment.month:02d}"


def id_bytes(value: uuid.UUID | str) -> bytes:
    """A stored id as 16 bytes: a UUID (PostgreSQL) or SQLite's 32 hex digits."""
    return value.bytes if isinstance(value, uuid.UUID) else bytes.fromhex(value)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else UNKNOWN


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


class Reader:
    """Decrypts and counts the slices of one run (one per process): KEKs, the associated-data
    prefixes, and the decoded values seen so far, by plaintext.

    The counted attributes take few values (sex, birth years, codes), so each
    plaintext is decoded once per run, not once per person. The caches live as
    long as the run (they are never shared between runs), and hold what the
    run's counts are made of anyway.

    A field is opened with the case's AES-GCM cipher directly: its associated
    data binds the value to its table, column, case and row, so a blob moved,
    altered or sealed under another key fails the tag. The key id in the
    header only names the key; it is not compared here (a wrong key fails the
    tag just the same).
    """

    def __init__(self, ctx: CountContext) -> None:
        self.ctx = ctx
        self.ring = cast(Keyring, _Ring(ctx.keks))
        self.needs_aad = field_aad_prefix(CASE_TABLE, "specific_needs")
        self.details_aad = field_aad_prefix(EVENT_TABLE, "details")
        self.sex_aad, self.year_aad, self.registration_aad, self.nationality_aad = (
            field_aad_prefix(MEMBER_TABLE, column) for column in PERSON_COLUMNS
        )
        self.texts: dict[bytes, str] = {}
        self.bands: dict[bytes, str] = {}
        self.families: dict[bytes, list[str]] = {}
        self.values: dict[bytes, Any] = {}

    # --- one case -------------------------------------------------------------------------

    def _cipher(self, case_id: bytes, kek_id: str, wrapped: bytes) -> AESGCM:
        material = unwrap_data_key(
            self.ring, WrappedKey(kek_id, bytes(wrapped)), uuid.UUID(bytes=case_id)
        )
        return AESGCM(material)

    @staticmethod
    def _open(cipher: AESGCM, blob: bytes, aad: bytes) -> bytes:
        return cipher.decrypt(blob[_NONCE_START:_SEALED_START], blob[_SEALED_START:], aad)

    def _text(self, cipher: AESGCM, blob: bytes | None, aad: bytes) -> str:
        if blob is None:
            return UNKNOWN
        plain = self._open(cipher, blob, aad)
        text = self.texts.get(plain)
        if text is None:
            text = _text(JSON.decode(plain))
            if len(self.texts) < _CACHE_MAX:
                self.texts[plain] = text
        return text

    def _band(self, cipher: AESGCM, blob: bytes | None, aad: bytes) -> str:
        if blob is None:
            return age_band(None, self.ctx.reference_year).value
        plain = self._open(cipher, blob, aad)
        band = self.bands.get(plain)
        if band is None:
            year = JSON.decode(plain)
            known = year if isinstance(year, int) and not isinstance(year, bool) else None
            band = age_band(known, self.ctx.reference_year).value
            if len(self.bands) < _CACHE_MAX:
                self.bands[plain] = band
        return band

    def _families(self, cipher: AESGCM, blob: bytes | None, aad: bytes) -> list[str]:
        if blob is None:
            return [NO_NEEDS]
        plain = self._open(cipher, blob, aad)
        families = self.families.get(plain)
        if families is None:
            needs: Any = JSON.decode(plain) or []
            known = self.ctx.families
            families = sorted({known.get(code, UNREADABLE) for code in needs}) or [NO_NEEDS]
            if len(self.families) < _CACHE_MAX:
                self.families[plain] = families
        return families

    def _value(self, cipher: AESGCM, blob: bytes | None, aad: bytes) -> Any:
        """A decoded JSON value; shared with other rows (cached): never change it."""
        if blob is None:
            return None
        plain = self._open(cipher, blob, aad)
        try:
            return self.values[plain]
        except KeyError:
            value = JSON.decode(plain)
            if len(self.values) < _CACHE_MAX:
                self.values[plain] = value
            return value

    def _household(
        self,
        case_id: bytes,
        members: list[tuple[Any, ...]],
        atom: tuple[str, str],
        people: list[Atom],
        children: list[Atom],
    ) -> None:
        """One household: each member into the people report, each child into the children's."""
        office, month = atom
        head = members[0]
        cipher = self._cipher(case_id, head[1], head[2])
        case_ids = _UUID_FRAME + case_id + _UUID_FRAME
        families = self._families(cipher, head[5], self.needs_aad + case_ids + case_id)
        for row in members:
            ids = case_ids + id_bytes(row[6])
            sex = self._text(cipher, row[7], self.sex_aad + ids)
            band = self._band(cipher, row[8], self.year_aad + ids)
            for family in families:
                people.append((office, month, (sex, band, family)))
            if band in CHILD_BANDS:
                registration = self._text(cipher, row[9], self.registration_aad + ids)
                nationality = self._text(cipher, row[10], self.nationality_aad + ids)
                children.append((office, month, (registration, nationality)))

    def _case_events(
        self, case_id: bytes, events: list[tuple[Any, ...]], kind: str, found: list[Atom]
    ) -> None:
        """Events of one case; each event carries its own month."""
        head = events[0]
        office = head[3]
        cipher = self._cipher(case_id, head[1], head[2])
        case_ids = _UUID_FRAME + case_id + _UUID_FRAME
        for row in events:
            details = self._value(cipher, row[6], self.details_aad + case_ids + id_bytes(row[4]))
            if not isinstance(details, dict) or details.get("kind") != kind:
                continue
            month = month_of(row[5])
            if kind == "funnel":
                step = _text(details.get("step"))
                for category in details.get("categories") or [NO_CATEGORY]:
                    found.append((office, month, (_text(category), step)))
            else:
                cell = (_text(details.get("decision")), _text(details.get("outcome")))
                found.append((office, month, cell))

    # --- one slice ------------------------------------------------------------------------

    def count(self, kind: str, rows: Iterable[tuple[Any, ...]]) -> Counts:
        """The atoms of ``rows`` (sorted by case) per report; a case that fails to decrypt
        counts once as ``unreadable`` (its error text is dropped: it could carry a value)."""
        if kind == "persons":
            return self._count_persons(rows)
        return self._count_events(kind, rows)

    def _count_persons(self, rows: Iterable[tuple[Any, ...]]) -> Counts:
        people: list[Atom] = []
        children: list[Atom] = []
        for raw_id, group in groupby(rows, _FIRST):
            members = list(group)
            head = members[0]
            atom = (head[3], month_of(head[4]))
            marks = len(people), len(children)
            try:
                self._household(id_bytes(raw_id), members, atom, people, children)
            except Exception:
                del people[marks[0] :], children[marks[1] :]
                people.append((*atom, (UNREADABLE,) * 3))
        return _counts({PEOPLE: people, CHILDREN: children})

    def _count_events(self, kind: str, rows: Iterable[tuple[Any, ...]]) -> Counts:
        found: list[Atom] = []
        for raw_id, group in groupby(rows, _FIRST):
            events = list(group)
            mark = len(found)
            try:
                self._case_events(id_bytes(raw_id), events, kind, found)
            except Exception:
                del found[mark:]
                found.append((events[0][3], month_of(events[0][5]), (UNREADABLE,) * 2))
        return _counts({EVENT_REPORTS[kind]: found})


def _counts(found: Mapping[str, list[Atom]]) -> Counts:
    return {name: Counter(atoms) for name, atoms in found.items() if atoms}


# --- worker processes ----------------------------------------------------------------------

_worker: tuple[Reader, Any] | None = None


def init_worker(ctx: CountContext, url: URL) -> None:
    """Process-pool initialiser: this worker's reader and its own connection to ``url``."""
    global _worker  # one reader and connection per worker process, set once at its start
    engine = create_engine(url, poolclass=NullPool, hide_parameters=True)
    connection = engine.raw_connection()
    _worker = (Reader(ctx), connection)
    # A pool's worker leaves through multiprocessing's exit (no atexit): close there.
    Finalize(None, connection.close, exitpriority=10)


def count_in_worker(kind: str, statement: Statement, bounds: Bounds) -> tuple[Counts, float]:
    """Read and count one slice in a worker, and the CPU seconds it took (what a benchmark
    adds up: the worker is no child of the caller)."""
    if _worker is None:
        raise RuntimeError("worker not initialised")
    reader, connection = _worker
    started = time.process_time()
    try:
        counts = reader.count(kind, fetch(connection, statement, bounds))
    finally:
        connection.rollback()  # no transaction left open between slices
    return counts, time.process_time() - started
