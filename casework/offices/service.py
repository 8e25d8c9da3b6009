"""Offices: create, rename, deactivate. Services never commit.

Deactivating an office ends the sessions of its staff at once; they cannot sign
in again until it is reactivated or they are moved to another office.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from casework import audit
from casework.audit import AuditAction
from casework.errors import Conflict, NotFound
from casework.offices.models import Office
from casework.pagination import keyset_page

DeactivationHook = Callable[[Session, str], None]
_DEACTIVATION_HOOKS = "casework.office_deactivation_hooks"


def on_deactivate(app: Flask, hook: DeactivationHook) -> None:
    """Register ``hook(session, office_code)`` to run in the transaction that deactivates an
    office (identity revokes the office's tokens): offices import no feature above them."""
    registered: list[DeactivationHook] = app.extensions.setdefault(_DEACTIVATION_HOOKS, [])
    if hook not in registered:
        registered.append(hook)


# API field name -> model attribute, for the fields a PATCH may change.
_UPDATABLE = {"name": "name", "country_code": "country_code", "active": "is_active"}


def get_office(session: Session, code: str, *, for_update: bool = False) -> Office:
    """The office ``code``; raises NotFound."""
    query = select(Office).where(Office.code == code)
    if for_update:
        query = query.with_for_update()
    office = session.scalar(query)
    if office is None:
        raise NotFound("No such office.")
    return office


def list_offices(
    session: Session, limit: int | None, cursor: str | None
) -> tuple[Sequence[Office], str | None]:
    return keyset_page(session, select(Office), Office.code, limit, cursor)


def create_office(
    session: Session, *, code: str, name: str, country_code: str, active: bool = True
) -> Office:
    """Add an office; raises Conflict when the code is taken."""
    if session.get(Office, code) is not None:
        raise Conflict("An office with this code exists.")
    office = Office(code=code, name=name, country_code=country_code, is_active=active)
    try:
        with session.begin_nested():  # a concurrent duplicate fails here, alone
            session.add(office)
    except IntegrityError:
        raise Conflict("An office with this code exists.") from None
    audit.record(
        AuditAction.OFFICE_CREATE,
        target=code,
        fields=["code", "name", "country_code", "active"],
        session=session,
    )
    return office


def update_office(session: Session, office: Office, changes: dict[str, Any]) -> Office:
    """Apply ``changes`` (API field names); the code never changes."""
    changed = [
        field
        for field, attribute in _UPDATABLE.items()
        if field in changes and getattr(office, attribute) != changes[field]
    ]
    if not changed:
        return office
    for field in changed:
        setattr(office, _UPDATABLE[field], changes[field])
    office.version += 1
    if "active" in changed and not office.is_active:
        for hook in current_app.extensions.get(_DEACTIVATION_HOOKS, []):
            hook(session, office.code)
    audit.record(AuditAction.OFFICE_UPDATE, target=office.code, fields=changed, session=session)
    session.flush()
    return office
