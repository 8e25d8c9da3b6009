"""Field offices: the unit of data scope and of sync."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from casework.db import Base
from casework.timestamps import UtcDateTime, utcnow

__all__ = ["Office", "utcnow"]


class Office(Base):
    """An office of the deployment. Its ``code`` is its identity: cases, users,
    devices and access-log entries name it, so it never changes."""

    __tablename__ = "offices"

    code: Mapped[str] = mapped_column(String(32), primary_key=True, comment="Short slug.")
    name: Mapped[str] = mapped_column(String(200))
    country_code: Mapped[str] = mapped_column(String(3), comment="ISO 3166-1 alpha-3.")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(
        Integer, default=1, server_default="1", comment="Bumped by every change (the ETag)."
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
