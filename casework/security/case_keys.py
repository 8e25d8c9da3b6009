"""Case data keys in a SQLAlchemy session: attach a keyring, provision keys.

A request's session carries a :class:`DataKeyCache` in ``session.info``; the
encrypted attributes of :mod:`casework.security.columns` find their keys there.
The cache is emptied whenever the session's transaction ends or a savepoint is
rolled back, so a key provisioned in a rolled-back transaction can never encrypt
data whose key row was not stored, and unwrapped keys do not outlive the unit of
work. A savepoint that is released keeps them: its key rows stay pending in the
enclosing transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from casework.security.data_key_cache import DataKeyCache
from casework.security.envelope import DataKey, WrappedKey, new_data_key, wrap_data_key
from casework.security.errors import DataKeyExistsError, EncryptionContextError
from casework.security.keyring import Keyring, utc_now
from casework.security.models import CaseKey

SESSION_INFO_KEY = "casework.security.data_keys"


def attach_keyring(session: Session, keyring: Keyring) -> DataKeyCache:
    """Give ``session`` a data-key cache backed by ``keyring`` and the case_keys table.

    Raises EncryptionContextError in a process whose session listeners are not
    installed (no ``create_app``): its flushes would store no ciphertext and its
    keys would outlive the unit of work.
    """
    if not event.contains(Session, "after_transaction_end", _end_of_unit_of_work):
        raise EncryptionContextError(
            "the session listeners of encrypted attributes are not installed: build the app "
            "with casework.create_app or call casework.security.columns.install_session_events"
        )

    def load_wrapped(case_id: uuid.UUID) -> WrappedKey | None:
        with session.no_autoflush:
            row = session.get(CaseKey, case_id)
        return None if row is None else row.wrapped()

    cache = DataKeyCache(keyring, load_wrapped)
    session.info[SESSION_INFO_KEY] = cache
    return cache


def data_key_cache(session: Session) -> DataKeyCache:
    """Return the session's cache; raise EncryptionContextError if no keyring was attached."""
    cache = session.info.get(SESSION_INFO_KEY)
    if not isinstance(cache, DataKeyCache):
        raise EncryptionContextError(
            "the session has no keyring: call casework.security.case_keys.attach_keyring first"
        )
    return cache


def provision_case_key(session: Session, case_id: uuid.UUID, *, drawn: bool = False) -> CaseKey:
    """Create, wrap and add a new data key for a new case; return its (pending) row.

    Raises DataKeyExistsError if the case already has a key: replacing it would
    make every field already stored for the case unreadable. ``drawn``: the
    caller has just drawn ``case_id`` at random (a case being built), so no
    stored row is looked for; were one there, the key row's primary key would
    refuse the insert and the transaction would fail, writing nothing.
    """
    cache = data_key_cache(session)
    if case_id in cache or (not drawn and session.get(CaseKey, case_id) is not None):
        raise DataKeyExistsError("the case already has a data key")
    material = new_data_key()
    wrapped = wrap_data_key(cache.keyring, material, case_id)
    row = CaseKey(case_id=case_id, kek_id=wrapped.kek_id, wrapped_key=wrapped.blob)
    session.add(row)
    cache.remember(case_id, DataKey(material))
    return row


def provision_new_case_keys(
    session: Session, case_ids: Iterable[uuid.UUID]
) -> list[dict[str, Any]]:
    """Create and wrap a data key for each new case, held by the session's cache; return
    the rows of their ``case_keys`` INSERT, for a caller that writes the cases without
    the unit of work (the same rows as :func:`provision_case_key`'s objects).

    The ids were just drawn at random (cases being built): no stored row is looked for,
    and were one there, the key row's primary key would refuse the insert.
    """
    cache = data_key_cache(session)
    keyring = cache.keyring
    rows = []
    for case_id in case_ids:
        if case_id in cache:
            raise DataKeyExistsError("the case already has a data key")
        material = new_data_key()
        wrapped = wrap_data_key(keyring, material, case_id)
        rows.append(
            {
                "case_id": case_id,
                "kek_id": wrapped.kek_id,
                "wrapped_key": wrapped.blob,
                "created_at": utc_now(),
                "rotated_at": None,
            }
        )
        cache.remember(case_id, DataKey(material))
    return rows


def install_key_cache_events() -> None:
    """Empty every session's key cache when its unit of work ends (once per process).

    Installed with the encrypted attributes' listeners
    (:func:`casework.security.columns.install_session_events`), never at import.
    """
    if not event.contains(Session, "after_transaction_end", _end_of_unit_of_work):
        event.listen(Session, "after_transaction_end", _end_of_unit_of_work)


def _end_of_unit_of_work(session: Session, transaction: SessionTransaction) -> None:
    """Empty the cache when the outermost transaction ends (commit or rollback)."""
    if transaction.parent is None:
        _clear(session)


@event.listens_for(Session, "after_soft_rollback")
def _savepoint_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    """Empty the cache when a savepoint is rolled back: a key it provisioned has no row."""
    if previous_transaction.nested:
        _clear(session)


def _clear(session: Session) -> None:
    cache: Any = session.info.get(SESSION_INFO_KEY)
    if isinstance(cache, DataKeyCache):
        cache.clear()
