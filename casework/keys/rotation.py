"""KEK rotation: re-wrap case data keys under the active KEK, then retire the old KEK.

Rotation never touches field ciphertext, only the 61-byte wrapped keys, so it
is cheap and can run in batches while the service is up: each batch is one
transaction, and the count of rows behind says how far it has come.
Sequence: ``keyring.rotate()`` and save; repeat ``rewrap_batch`` and commit
until ``keys_behind`` is 0; ``retire_kek`` and save the keyring again.
``casework keys rotate`` (:mod:`casework.keys.cli`) runs it all.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from casework.security.envelope import WrappedKey, unwrap_data_key, wrap_data_key
from casework.security.errors import KeyringError
from casework.security.keyring import Keyring, KeyState, utc_now
from casework.security.models import CaseKey

DEFAULT_BATCH_SIZE = 2000


def rewrap(keyring: Keyring, wrapped: WrappedKey, case_id: uuid.UUID) -> WrappedKey:
    """Return the same data key wrapped under the keyring's active KEK.

    Raises DecryptionError or UnknownKeyError if ``wrapped`` cannot be opened.
    """
    return wrap_data_key(keyring, unwrap_data_key(keyring, wrapped, case_id), case_id)


def keys_behind(session: Session, keyring: Keyring) -> int:
    """Return how many case keys are not yet wrapped under the active KEK."""
    active = keyring.active_kek().kek_id
    query = select(func.count()).select_from(CaseKey).where(CaseKey.kek_id != active)
    return session.scalar(query) or 0


@dataclass(frozen=True)
class Cursor:
    """Where a pass stands: the source KEK it is walking and the last case id it did."""

    kek_id: str
    case_id: uuid.UUID


@dataclass(frozen=True)
class Batch:
    """What one :func:`rewrap_after` call did: rows re-wrapped, and where to go on from."""

    count: int
    cursor: Cursor | None


def rewrap_after(
    session: Session,
    keyring: Keyring,
    after: Cursor | None = None,
    *,
    limit: int = DEFAULT_BATCH_SIZE,
) -> Batch:
    """Re-wrap up to ``limit`` keys behind, after ``after`` in (KEK id, case id) order.

    Does not commit. Only keys under a decrypt-only KEK are taken: one under a
    destroyed or unknown KEK can never be opened, and retrying it would stall
    the job forever (``keys_behind`` still counts it). Each batch reads one
    source KEK's keys in case-id order from the ``(kek_id, case_id)`` index, so
    a batch costs the same at the start and the end of a million keys (with
    the cursor; without it every batch would rescan the rows already done).
    Rows are locked (``FOR UPDATE SKIP LOCKED`` where supported) so that two
    workers can share the job, and written back in one statement
    (:func:`_store`), which bypasses the ORM: the session must not hold these
    ``CaseKey`` rows with pending changes.
    """
    sources = sorted(k.kek_id for k in keyring.keks if k.state is KeyState.DECRYPT_ONLY)
    for source in sources:
        if after is not None and source < after.kek_id:
            continue
        start = after.case_id if after is not None and source == after.kek_id else None
        rows = _locked_batch(session, source, start, limit)
        if rows:
            blobs = [
                rewrap(keyring, WrappedKey(source, bytes(blob)), case_id).blob
                for case_id, blob in rows
            ]
            _store(session, keyring.active_kek().kek_id, [r[0] for r in rows], blobs)
            return Batch(len(rows), Cursor(source, rows[-1][0]))
    return Batch(0, None)


def _locked_batch(
    session: Session, source: str, after: uuid.UUID | None, limit: int
) -> list[tuple[uuid.UUID, bytes]]:
    """The next ``limit`` (case id, wrapped key) rows under ``source``, locked."""
    keys = CaseKey.__table__.c
    query = select(keys.case_id, keys.wrapped_key).where(keys.kek_id == source)
    if after is not None:
        query = query.where(keys.case_id > after)
    query = query.order_by(keys.case_id).limit(limit).with_for_update(skip_locked=True)
    return [(case_id, blob) for case_id, blob in session.connection().execute(query).all()]


def _store(session: Session, kek_id: str, case_ids: list[uuid.UUID], blobs: list[bytes]) -> None:
    """Write re-wrapped keys back by primary key, in one statement where the backend can.

    PostgreSQL: one ``UPDATE ... FROM unnest(ids, blobs)``, two array parameters
    whatever the batch size. SQLite: one prepared statement run for every row by
    the driver (``executemany``), its parameters converted to what SQLite stores
    by the columns' own types, once per value, without a compiled statement per row.
    """
    now = utc_now()
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name == "postgresql":
        connection.execute(_PG_STORE, {"kek": kek_id, "now": now, "ids": case_ids, "blobs": blobs})
        return
    keys = CaseKey.__table__.c
    as_stored = _stored_form(keys.case_id.type, dialect)
    stamp = _stored_form(keys.rotated_at.type, dialect)(now)
    connection.exec_driver_sql(
        "UPDATE case_keys SET kek_id = ?, wrapped_key = ?, rotated_at = ? WHERE case_id = ?",
        [(kek_id, blob, stamp, as_stored(c)) for c, blob in zip(case_ids, blobs, strict=True)],
    )


def _stored_form(column_type: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any]:
    """The column type's conversion to what the backend stores (a UUID's hex on SQLite)."""
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else (lambda value: value)


_PG_STORE = text(
    "UPDATE case_keys SET kek_id = :kek, wrapped_key = v.blob, rotated_at = :now "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:blobs AS bytea[])) AS v(case_id, blob) "
    "WHERE case_keys.case_id = v.case_id"
)


def rewrap_batch(session: Session, keyring: Keyring, *, limit: int = DEFAULT_BATCH_SIZE) -> int:
    """Re-wrap up to ``limit`` keys that are behind; return how many. Does not commit.

    The first rows behind in case-id order; see :func:`rewrap_after`, which
    long jobs should call with a cursor instead.
    """
    return rewrap_after(session, keyring, limit=limit).count


def retire_kek(session: Session, keyring: Keyring, kek_id: str) -> None:
    """Destroy a decrypt-only KEK, refusing while any case key is still wrapped under it.

    Retiring it early would shred every such case. Save the keyring afterwards.
    """
    query = select(func.count()).select_from(CaseKey).where(CaseKey.kek_id == kek_id)
    remaining = session.scalar(query) or 0
    if remaining:
        raise KeyringError(
            f"{remaining} case key(s) are still wrapped under KEK {kek_id}: re-wrap them first"
        )
    keyring.retire(kek_id)
