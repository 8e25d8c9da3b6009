"""``casework handoff``: this deployment's keys for partners, and importing their packages."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.db import get_db
from casework.errors import CaseworkError
from casework.handoff import keys, service
from casework.handoff.partner_package import MAX_PACKAGE_BYTES, PackageError
from casework.offices.models import Office
from casework.security.app import holder
from casework.security.case_keys import attach_keyring


@click.group("handoff")
def handoff_group() -> None:
    """Partner hand-offs: the keys partners register, and importing their packages."""


@handoff_group.command("public-key")
@with_appcontext
def public_key_command() -> None:
    """Print what a partner registers for this deployment (public keys only)."""
    found = keys.public_keys(holder(current_app).get())
    click.echo(f"x25519 (packages to us):    {found.x25519}")
    click.echo(f"  fingerprint:              {found.x25519_fingerprint}")
    click.echo(f"ed25519 (packages from us): {found.ed25519}")
    click.echo(f"  fingerprint:              {found.ed25519_fingerprint}")


def _refuse(reason: str) -> NoReturn:
    click.echo(f"casework handoff import: refused: {reason}", err=True)
    raise SystemExit(1)


def _office(session: Session, requested: str | None) -> str:
    """The office to import into: the one named, or the only active one."""
    if requested is not None:
        return requested
    active = list(session.scalars(select(Office.code).where(Office.is_active)))
    if len(active) != 1:
        _refuse("name the office to import into with --office")
    return str(active[0])


@handoff_group.command("import")
@click.argument("package", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--office", "office", default=None, help="Office the new case belongs to.")
@click.option("--sender", "sender", default=None, help="Code of the partner who sent it.")
@with_appcontext
def import_command(package: Path, office: str | None, sender: str | None) -> None:
    """Verify and decrypt PACKAGE from a partner and register it as a new case.

    The signature must be a registered partner's (its verification key); the
    package must be sealed to this deployment's key. Anything wrong: one line
    saying why, exit status 1, nothing written.
    """
    if package.stat().st_size > MAX_PACKAGE_BYTES:
        _refuse("the file is larger than any package can be")
    blob = package.read_bytes()
    keyring = holder(current_app).get()
    session = get_db().session_factory()
    attach_keyring(session, keyring)
    try:
        target = _office(session, office)
        case = service.import_package(session, keyring, blob, target, sender)
        reference = case.reference
        session.commit()
    except PackageError as error:
        session.rollback()
        _refuse(str(error))
    except CaseworkError as error:  # an unknown or inactive office
        session.rollback()
        _refuse("no such active office" if error.status == 422 else error.detail)
    finally:
        session.close()
    click.echo(f"imported as case {reference} in office {target}")
