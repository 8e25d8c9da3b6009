"""Identity tables: staff users, their bearer tokens, and login-failure counters.

No secret is stored in a usable form: passwords as argon2id hashes, tokens as
SHA-256 digests, TOTP seeds sealed under a key-encryption key of the keyring.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from casework.db import Base
from casework.offices.models import Office
from casework.security.keyring import KEK_ID_HEX_DIGITS
from casework.timestamps import UtcDateTime, utcnow


class User(Base):
    """A member of staff. The role names a row of the permission table; the
    office bounds which cases the user can see (none for admins and auditors)."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(
        String(64), unique=True, comment="Lower case; the login name."
    )
    role: Mapped[str] = mapped_column(String(32), comment="A key of ROLE_PERMISSIONS.")
    office_code: Mapped[str | None] = mapped_column(
        ForeignKey("offices.code"), index=True, comment="Null for officeless roles."
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str] = mapped_column(String(255), comment="argon2id PHC string.")
    password_changed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    mfa_secret: Mapped[bytes | None] = mapped_column(
        LargeBinary, comment="TOTP seed sealed with AES-256-GCM under the KEK mfa_kek_id."
    )
    mfa_kek_id: Mapped[str | None] = mapped_column(String(KEK_ID_HEX_DIGITS), index=True)
    mfa_enabled_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, comment="Set when enrolment was confirmed; null while pending or off."
    )
    mfa_last_step: Mapped[int | None] = mapped_column(
        BigInteger, comment="Last TOTP time step accepted; that step and earlier are refused."
    )
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    version: Mapped[int] = mapped_column(
        Integer, default=1, comment="Bumped by administrative changes (the ETag), not by logins."
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    office: Mapped[Office | None] = relationship(lazy="joined")
    tokens: Mapped[list[AccessToken]] = relationship(
        back_populates="user", passive_deletes=True, lazy="raise"
    )

    def __repr__(self) -> str:
        return f"User(id={self.id!s}, role={self.role!r}, office={self.office_code!r})"

    @property
    def is_mfa_enabled(self) -> bool:
        return self.mfa_enabled_at is not None

    @property
    def may_sign_in(self) -> bool:
        """Active, and not attached to a deactivated office."""
        return self.is_active and (self.office is None or self.office.is_active)


class AccessToken(Base):
    """A staff bearer token, known to the server only by its SHA-256 digest."""

    __tablename__ = "auth_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    mfa_pending: Mapped[bool] = mapped_column(
        Boolean, default=False, comment="Good only for MFA enrolment until confirmed."
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(
        UtcDateTime, default=utcnow, comment="Refreshed at most once a minute (idle expiry)."
    )
    expires_at: Mapped[datetime] = mapped_column(
        UtcDateTime, index=True, comment="Absolute expiry."
    )
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    user: Mapped[User] = relationship(back_populates="tokens", lazy="joined")


class LoginThrottle(Base):
    """Consecutive failed logins under one key (an account or a client address).

    The key is an HMAC, so the table names neither users nor addresses.
    """

    __tablename__ = "auth_throttle"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(
        UtcDateTime, index=True, comment="The row may be purged after this time."
    )
