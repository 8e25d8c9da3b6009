"""Field offices: the unit of data scope and of sync."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from casework.db import Base


def utcnow() -> datetime:
    return datetime.now(UTC)


class Office(Base):
    """An office of the deployment. Its ``code`` is its identity: cases, users,
    devices and access-log entries name it, so it never changes."""

    __tablename__ = "offices"

    code: Mapped[str] = mapped_column(String(32), primary_key=True, comment="Short slug.")
    name: Mapped[str] = mapped_column(String(200))
    country_code: Mapped[str] = mapped_column(String(3), comment="ISO 3166-1 alpha-3.")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
