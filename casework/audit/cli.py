"""Commands: ``casework audit checkpoint | export | verify | public-key``.

``verify --from-export FILE --key KEY`` needs no configuration, database or
keyring: an auditor runs it on their own machine with the export and the
verifier key string they pinned (``casework audit public-key``, or
``GET /api/v1/audit/public-key``). Exit status 0 means the log verified, 1 that
it did not, 2 a usage error. Output is one JSON object, never entry content.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import IO

import click
from flask.cli import AppGroup, ScriptInfo

from casework.audit import service, signer, store
from casework.audit.actions import AuditAction, Outcome
from casework.audit.checkpoint import MAX_NOTE_LENGTH, CheckpointError, VerifierKey
from casework.audit.verify import VerifyResult, verify_export_file
from casework.db import get_db

audit_group = AppGroup("audit", help="The tamper-evident access log.")

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@audit_group.command("checkpoint")
def checkpoint_command() -> None:
    """Sign a checkpoint of the whole log now and print its note."""
    session = get_db().session_factory()
    try:
        checkpoint = service.checkpoint_now(session, actor=service.SYSTEM)
        session.commit()
    except signer.LogIntegrityError as error:
        session.commit()  # the failure entry
        raise click.ClickException(f"not signed: {error.reason}") from None
    finally:
        session.close()
    click.echo(checkpoint.note, nl=False)


@audit_group.command("public-key")
def public_key_command() -> None:
    """Print the verifier key string to pin (give it to verify --key)."""
    click.echo(signer.log_identity().verifier_key)


@audit_group.command("export")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (created 0600); standard output by default.",
)
def export_command(out: Path | None) -> None:
    """Write the whole log as JSON Lines (recorded as audit.export)."""
    factory = get_db().session_factory
    session = factory()
    try:
        service.record(AuditAction.AUDIT_EXPORT, actor=service.SYSTEM, session=session)
        state = store.log_state(session)
        session.commit()
    finally:
        session.close()
    lines = store.export_lines(store.in_short_sessions(factory), state.size, state.notes)
    if out is None:
        _write(lines, sys.stdout)
    else:
        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(descriptor, "w", encoding="ascii", newline="") as handle:
            _write(lines, handle)
        summary = f"{state.size} entries and {len(state.notes)} checkpoints"
        click.echo(f"exported {summary} to {out}", err=True)


def _write(lines: Iterable[str], handle: IO[str]) -> None:
    for line in lines:
        handle.write(line)


@audit_group.command("verify", with_appcontext=False)
@click.option("--from-export", "export", type=_FILE, help="Verify this export file.")
@click.option(
    "--checkpoint",
    "checkpoints",
    type=_FILE,
    multiple=True,
    help="A checkpoint note kept from earlier (repeatable): the log must still match it.",
)
@click.option("--key", help="Verifier key <name>+<id>+<key>; default: this service's key.")
@click.option("--origin", help="The checkpoints' origin; default: the key name.")
@click.pass_context
def verify_command(
    ctx: click.Context,
    export: Path | None,
    checkpoints: tuple[Path, ...],
    key: str | None,
    origin: str | None,
) -> None:
    """Verify every hash, link and signed checkpoint; name the first bad seq.

    Without --from-export, verifies the service's database (recorded as
    audit.verify). With --from-export and --key, runs without any service.
    """
    pinned = [_read_note(path) for path in checkpoints]
    if export is not None and key is not None:
        verifier = _parse_key(key)
        result = verify_export_file(
            export, verifier.public_key, verifier.name, origin or verifier.name, pinned
        )
    else:
        app = ctx.ensure_object(ScriptInfo).load_app()
        with app.app_context():
            result = _verify_with_service(export, pinned, key, origin)
    click.echo(json.dumps(asdict(result)))
    ctx.exit(0 if result.ok else 1)


def _verify_with_service(
    export: Path | None, pinned: list[str], key: str | None, origin: str | None
) -> VerifyResult:
    identity = signer.log_identity()
    if key is not None:
        verifier = _parse_key(key)
        identity = signer.LogIdentity(verifier.name, verifier.public_key)
    if origin is not None and origin != identity.origin:
        raise click.BadParameter("a different origin needs --key as well", param_hint="--origin")
    if export is not None:
        return verify_export_file(
            export, identity.public_key, identity.key_name, identity.origin, pinned
        )
    factory = get_db().session_factory
    with factory() as session:  # closed at once: no transaction spans the long read
        state = store.log_state(session)
    result = store.verify_stored(state, store.in_short_sessions(factory), identity, pinned)
    with factory() as session:
        outcome = Outcome.SUCCESS if result.ok else Outcome.FAILURE
        service.record(AuditAction.AUDIT_VERIFY, outcome=outcome, session=session)
        session.commit()
    return result


def _parse_key(text: str) -> VerifierKey:
    try:
        return VerifierKey.parse(text.strip())
    except CheckpointError as error:
        raise click.BadParameter(str(error), param_hint="--key") from None


def _read_note(path: Path) -> str:
    with path.open("rb") as handle:
        data = handle.read(MAX_NOTE_LENGTH + 1)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise click.BadParameter(f"{path} is not UTF-8", param_hint="--checkpoint") from None
