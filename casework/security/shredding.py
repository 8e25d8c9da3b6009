"""Crypto-shredding: erase a case by destroying its data key.

Once the wrapped key row is gone, every ciphertext of the case, in the live
database, in replicas and in every backup taken afterwards, is noise. Backups
taken *before* the shred still hold the key row: their retention bounds how
long an erased case stays recoverable. The cases feature also overwrites the
ciphertext columns and drops the case's blind indexes in the same transaction.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from casework.security.case_keys import SESSION_INFO_KEY
from casework.security.data_key_cache import DataKeyCache
from casework.security.errors import MissingDataKeyError
from casework.security.models import CaseKey


def shred(session: Session, case_id: uuid.UUID) -> None:
    """Delete the case's data key row and drop any cached copy; flushes the session.

    Pending encrypted assignments are flushed first, while the key still exists.
    Raises MissingDataKeyError if the case has no key (never provisioned, or
    already shredded), so an erasure that did nothing is not reported as done.
    """
    session.flush()  # seal values assigned so far while the key can still be loaded
    row = session.get(CaseKey, case_id)
    if row is None:
        raise MissingDataKeyError("the case has no data key to shred")
    session.delete(row)
    session.flush()  # the key row must be gone before anyone reads the case again
    cache = session.info.get(SESSION_INFO_KEY)
    if isinstance(cache, DataKeyCache):
        cache.forget(case_id)
