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
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from casework.security.envelope import WrappedKey, unwrap_data_key, wrap_data_key
from casework.security.errors import KeyringError
from casework.security.keyring import Keyring, KeyState, utc_now
from casework.security.models import CaseKey

DEFAULT_BATCH_SIZE = 500


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
class Batch:
    """What one :func:`rewrap_after` call did: rows re-wrapped, and the last case id seen."""

    count: int
    last_case_id: uuid.UUID | None


def rewrap_after(
    session: Session,
    keyring: Keyring,
    after: uuid.UUID | None = None,
    *,
    limit: int = DEFAULT_BATCH_SIZE,
) -> Batch:
    """Re-wrap up to ``limit`` keys behind, in case-id order after ``after``. Does not commit.

    Only keys under a decrypt-only KEK are taken: one under a destroyed or
    unknown KEK can never be opened, and retrying it would stall the job
    forever (``keys_behind`` still counts it). Rows are locked (``FOR UPDATE
    SKIP LOCKED`` where supported) so that two workers can share the job.
    Passing the previous batch's last case id keeps each batch an index range
    scan; without it every batch would rescan the rows already done. The
    update is one executemany statement (ORM bulk UPDATE by primary key)
    rather than a flush of loaded objects; it bypasses the unit of work, so
    the session must not hold these ``CaseKey`` rows with pending changes.
    """
    sources = [k.kek_id for k in keyring.keks if k.state is KeyState.DECRYPT_ONLY]
    if not sources:
        return Batch(0, None)
    query = select(CaseKey.case_id, CaseKey.kek_id, CaseKey.wrapped_key).where(
        CaseKey.kek_id.in_(sources)
    )
    if after is not None:
        query = query.where(CaseKey.case_id > after)
    query = query.order_by(CaseKey.case_id).limit(limit).with_for_update(skip_locked=True)
    rows = session.execute(query).all()
    if not rows:
        return Batch(0, None)
    now = utc_now()
    rewrapped = []
    for case_id, kek_id, blob in rows:
        wrapped = rewrap(keyring, WrappedKey(kek_id, bytes(blob)), case_id)
        rewrapped.append(
            {
                "case_id": case_id,
                "kek_id": wrapped.kek_id,
                "wrapped_key": wrapped.blob,
                "rotated_at": now,
            }
        )
    session.execute(update(CaseKey), rewrapped)  # ORM bulk UPDATE by primary key
    return Batch(len(rows), rows[-1].case_id)


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
