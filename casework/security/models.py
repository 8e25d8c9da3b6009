"""Tables owned by the security layer."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from casework.db import Base
from casework.security.envelope import WrappedKey
from casework.security.keyring import KEK_ID_HEX_DIGITS, utc_now
from casework.timestamps import UtcDateTime


class CaseKey(Base):
    """A case's data key, wrapped under a KEK. Deleting the row crypto-shreds the case."""

    __tablename__ = "case_keys"
    # A re-wrap walks one KEK's keys in case-id order (casework.keys.rotation): with
    # the case id in the index each batch is a range scan, not a sort of every key.
    __table_args__ = (Index(None, "kek_id", "case_id"),)

    case_id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, comment="the case whose fields this data key encrypts"
    )
    kek_id: Mapped[str] = mapped_column(
        String(KEK_ID_HEX_DIGITS),
        comment="KEK that wraps the data key; rows not under the active KEK await re-wrapping",
    )
    wrapped_key: Mapped[bytes] = mapped_column(
        LargeBinary, comment="AES-256-GCM sealed data key, format in docs/encryption.md"
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    rotated_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="last re-wrap under a new KEK"
    )

    def __repr__(self) -> str:
        return f"CaseKey(case_id={self.case_id!s}, kek_id={self.kek_id!r})"

    def wrapped(self) -> WrappedKey:
        """Return the stored wrapped key for :func:`casework.security.envelope.unwrap_data_key`."""
        return WrappedKey(self.kek_id, self.wrapped_key)

    def store(self, wrapped: WrappedKey) -> None:
        """Replace the stored wrapped key (a new key, or a re-wrap under another KEK)."""
        self.kek_id = wrapped.kek_id
        self.wrapped_key = wrapped.blob


class ShredMark(Base):
    """An erasure whose data key may still sit, wrapped, in a copy of the database.

    Deleting a case's key row does not remove it from dead tuples, WAL,
    replicas or backups. The copy stays openable while the KEK that was
    active at erasure (``kek_id``), or any older one, is still in the keyring;
    ``casework keys shred`` destroys those KEKs and then drops the mark. No
    case id is kept: the mark says only that some erasure waits for a shred.
    """

    __tablename__ = "key_shred_marks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kek_id: Mapped[str] = mapped_column(
        String(KEK_ID_HEX_DIGITS),
        index=True,
        comment="KEK active when the case was erased: it and every older KEK must be destroyed",
    )
    marked_at: Mapped[datetime] = mapped_column(
        UtcDateTime, default=utc_now, comment="when the erasure was committed"
    )
