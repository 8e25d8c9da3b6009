"""Erasure of a case reaches sync: snapshots, conflicts and stored results go with it.

Crypto-shredding already turns every sealed byte into noise; these rows are also
deleted or overwritten so nothing waits for a key that no longer exists. The
stored results keep their ids and status, so a retried mutation of an erased case
is still a duplicate, never applied twice. The feed entry becomes ``delete`` when
the erasure commits.
"""

from __future__ import annotations

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from casework.cases.models import Case
from casework.sync.models import CaseVersion, Mutation, SyncConflict


def erase_sync_data(session: Session, case: Case) -> None:
    session.execute(delete(CaseVersion).where(CaseVersion.case_id == case.id))
    session.execute(delete(SyncConflict).where(SyncConflict.case_id == case.id))
    session.execute(
        update(Mutation)
        .where(Mutation.key_id == case.id)
        # The row seal goes with the sealed result, as erase_ciphertext does: an erased
        # row has no key to check a seal with.
        .values({Mutation.__table__.c.result: None, Mutation.__table__.c.row_seal: None})
        .execution_options(synchronize_session=False)
    )
