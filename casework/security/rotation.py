"""KEK rotation: re-wrap case data keys under the active KEK, then retire the old KEK.

Rotation never touches field ciphertext, only the 61-byte wrapped keys, so it
is cheap and can run in batches while the service is up: each batch is one
transaction, and the count of rows behind says how far it has come.
Sequence: ``keyring.rotate()`` and save; repeat ``rewrap_batch`` and commit
until ``keys_behind`` is 0; ``retire_kek`` and save the keyring again.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casework.security.envelope import WrappedKey, unwrap_data_key, wrap_data_key
from casework.security.errors import KeyringError
from casework.security.keyring import Keyring, utc_now
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


def rewrap_batch(session: Session, keyring: Keyring, *, limit: int = DEFAULT_BATCH_SIZE) -> int:
    """Re-wrap up to ``limit`` keys that are behind; return how many. Does not commit.

    Rows are locked (``FOR UPDATE SKIP LOCKED`` where supported) so that two
    workers can share the job.
    """
    active = keyring.active_kek().kek_id
    query = (
        select(CaseKey)
        .where(CaseKey.kek_id != active)
        .order_by(CaseKey.case_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = session.scalars(query).all()
    now = utc_now()
    for row in rows:
        row.store(rewrap(keyring, row.wrapped(), row.case_id))
        row.rotated_at = now
    return len(rows)


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
