"""Test-only models and an in-memory database for the encrypted attributes.

They live on their own declarative base so that ``casework.db.Base.metadata``,
which migrations are compared against, never sees them.
"""

import uuid

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from casework.security.case_keys import attach_keyring
from casework.security.columns import (
    ClientIdMixin,
    sealed_date,
    sealed_dict,
    sealed_int,
    sealed_text,
)
from casework.security.keyring import Keyring
from casework.security.models import CaseKey, ShredMark


class SampleBase(DeclarativeBase):
    pass


class Member(ClientIdMixin, SampleBase):
    """A household member: plaintext ids, everything personal encrypted."""

    __tablename__ = "sample_members"

    case_id: Mapped[uuid.UUID] = mapped_column(index=True)
    full_name = sealed_text(64)
    nickname = sealed_text(64)
    born_on = sealed_date(16)
    household_size = sealed_int(8)
    needs = sealed_dict(64)
    phone = sealed_text(32, column_name="phone_number")


class SampleCase(SampleBase):
    """A case row: its own id is the case id."""

    __tablename__ = "sample_cases"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    narrative = sealed_text(64, case_id_attr="id")


class IntegerKeyed(SampleBase):
    """A model that forgot client-generated ids: it cannot hold encrypted values."""

    __tablename__ = "sample_integer_keyed"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[uuid.UUID]
    secret = sealed_text(16)


def make_engine() -> Engine:
    engine = create_engine("sqlite://")
    SampleBase.metadata.create_all(engine)
    CaseKey.metadata.tables[CaseKey.__tablename__].create(engine)
    ShredMark.metadata.tables[ShredMark.__tablename__].create(engine)
    return engine


def open_session(engine: Engine, keyring: Keyring, *, expire_on_commit: bool = True) -> Session:
    session = Session(engine, expire_on_commit=expire_on_commit)
    attach_keyring(session, keyring)
    return session
