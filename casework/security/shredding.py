"""Crypto-shredding: erase a case by destroying its data key.

Once the wrapped key row is gone, every ciphertext of the case in the live
database is noise. Copies taken *before* (backups, replicas, PostgreSQL dead
tuples and WAL) still hold the wrapped key, openable while its KEK is in the
keyring: so the erasure also leaves a :class:`~casework.security.models.ShredMark`,
and ``casework keys shred`` (:mod:`casework.keys`) later destroys that KEK after
re-wrapping every live key under a fresh one. The cases feature also overwrites
the ciphertext columns and drops the case's blind indexes in the same transaction.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from casework.security.case_keys import SESSION_INFO_KEY
from casework.security.columns import forget_opened_rows
from casework.security.data_key_cache import DataKeyCache
from casework.security.errors import MissingDataKeyError
from casework.security.models import CaseKey, ShredMark


def shred(session: Session, case_id: uuid.UUID) -> None:
    """Delete the case's data key row, mark the erasure for the shred step, drop any
    cached copy of the key and every plaintext of the case opened in the session;
    flushes the session.

    Pending encrypted assignments are flushed first, while the key still exists.
    Raises MissingDataKeyError if the case has no key (never provisioned, or
    already shredded), so an erasure that did nothing is not reported as done.
    """
    session.flush()  # seal values assigned so far while the key can still be loaded
    row = session.get(CaseKey, case_id)
    if row is None:
        raise MissingDataKeyError("the case has no data key to shred")
    session.delete(row)
    keys = session.info.get(SESSION_INFO_KEY)
    active = keys.keyring.active_kek().kek_id if isinstance(keys, DataKeyCache) else row.kek_id
    session.add(ShredMark(kek_id=active))
    session.flush()  # the key row must be gone before anyone reads the case again
    if isinstance(keys, DataKeyCache):
        keys.forget(case_id)
    forget_opened_rows(session, case_id)
