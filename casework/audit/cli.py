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
import socket
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import IO

import click
from flask.cli import AppGroup, ScriptInfo
from sqlalchemy.orm import Session

from casework.audit import keys, service, signer, store, verification, witness
from casework.audit.actions import AuditAction, Outcome
from casework.audit.checkpoint import MAX_NOTE_LENGTH, CheckpointError, VerifierKey
from casework.audit.verify import KeyInForce, VerifyResult, verify_export_file
from casework.db import get_db, read_only_session

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


@audit_group.command("rotate-key")
def rotate_key_command() -> None:
    """Replace the checkpoint-signing key; the rotation is recorded in the log, signed by both."""
    session = get_db().session_factory()
    try:
        record = service.rotate_signing_key(session, actor=service.SYSTEM)
    finally:
        session.close()
    click.echo(json.dumps({"from_size": record.from_size, "vkey": record.vkey}))


@audit_group.command("witness", with_appcontext=False)
@click.option(
    "--url", required=True, help="The casework service, e.g. https://casework.example.org"
)
@click.option(
    "--state",
    "state_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="This witness's state file (the latest checkpoint it cosigned).",
)
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="This witness's Ed25519 key file, created (0600) on the first run.",
)
@click.option("--name", default=None, help="Key name for a new key (default: witness/<host>).")
@click.option("--print-vkey", is_flag=True, help="Only print the vkey to register, then exit.")
def witness_command(
    url: str, state_path: Path, key_path: Path, name: str | None, print_vkey: bool
) -> None:
    """Cosign the log's latest checkpoint once it is consistent with the last one seen.

    Run it from cron on another machine. The first run creates the key and
    prints its vkey (C2SP form) on standard error, for an administrator to
    register with POST /api/v1/audit/witnesses. Exit status 1 when the log
    misbehaved (not consistent, forked, signed by an unknown key).
    """
    default_name = name or f"witness/{socket.gethostname()}"
    private_key, key_name = witness.load_or_create_key(key_path, default_name)
    vkey = witness.WitnessKey(key_name, private_key.public_key()).encode()
    if print_vkey:
        click.echo(vkey)
        return
    click.echo(f"witness vkey: {vkey}", err=True)
    try:
        result = witness.run_once(url, state_path, key_path, key_name)
    except witness.WitnessError as error:
        click.echo(json.dumps({"ok": False, "reason": str(error)}))
        raise SystemExit(1) from None
    click.echo(json.dumps({"ok": True, **result}))


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
    read = store.in_short_sessions(partial(read_only_session, get_db()))
    lines = store.export_lines(read, state.size, state.notes)
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
@click.option(
    "--witnessed",
    type=_FILE,
    help="A witness's state file, or a cosigned checkpoint note: the log must contain it, "
    "and the log's key is followed from the one the witness pinned.",
)
@click.option("--witness-key", help="The witness's vkey: the --witnessed note must carry its line.")
@click.option(
    "--keys",
    "keys_file",
    type=_FILE,
    help="The log's key chain (the JSON of GET /api/v1/audit/keys), for an export.",
)
@click.pass_context
def verify_command(
    ctx: click.Context,
    export: Path | None,
    checkpoints: tuple[Path, ...],
    key: str | None,
    origin: str | None,
    witnessed: Path | None,
    witness_key: str | None,
    keys_file: Path | None,
) -> None:
    """Verify every hash, link and signed checkpoint; name the first bad seq.

    Without --from-export, verifies the service's database (recorded as
    audit.verify). With --from-export and --key (or --witnessed), runs without
    any service. With --witnessed, reports how far back the log is witnessed
    (``witnessed_size``): a rewrite, truncation or fork before it is detected
    even by someone holding the database and the log's signing key.
    """
    pinned = [_read_note(path) for path in checkpoints]
    anchor = _Witnessed.read(witnessed, witness_key) if witnessed else None
    if anchor is not None:
        pinned.append(anchor.note)
        key = key or anchor.log_key
    records = _read_keys(keys_file) if keys_file else None
    if export is not None and key is not None:
        verifier = _parse_key(key)
        log_origin = origin or verifier.name
        in_force, chain_error = _key_ranges(verifier, records, log_origin)
        result = verify_export_file(
            export, verifier.public_key, verifier.name, log_origin, pinned, in_force
        )
    else:
        app = ctx.ensure_object(ScriptInfo).load_app()
        with app.app_context():
            result, chain_error = _verify_with_service(export, pinned, key, origin, records)
    if chain_error is not None:
        result = VerifyResult(
            False,
            result.entries,
            result.checkpoints,
            min(result.first_bad_seq or chain_error.from_size + 1, chain_error.from_size + 1),
            f"{chain_error}; {result.reason}" if not result.ok else str(chain_error),
        )
    output = asdict(result)
    if anchor is not None:
        output["witnessed_size"] = anchor.size
    click.echo(json.dumps(output))
    ctx.exit(0 if result.ok else 1)


class _Witnessed:
    """A witnessed checkpoint: from a witness's state file or a cosigned note."""

    def __init__(self, note: str, log_key: str | None) -> None:
        self.note = note
        self.log_key = log_key
        self.size = int(note.split("\n")[1]) if note.count("\n") > 2 else 0

    @classmethod
    def read(cls, path: Path, witness_key: str | None) -> _Witnessed:
        text = _read_note(path)
        if text.lstrip().startswith("{"):
            state = json.loads(text)
            anchor = cls(str(state["note"]), str(state["log_key"]))
        else:
            anchor = cls(text, None)
        if witness_key is not None:
            try:
                wkey = witness.WitnessKey.parse(witness_key)
                body, lines = witness.split_note(anchor.note)
            except CheckpointError as error:
                raise click.BadParameter(str(error), param_hint="--witness-key") from None
            if not any(_cosigned_by(line, wkey, body) for line in lines):
                raise click.ClickException(
                    "the witnessed checkpoint carries no line of that witness"
                )
        return anchor


def _cosigned_by(line: str, wkey: witness.WitnessKey, body: str) -> bool:
    try:
        witness.verify_cosignature(line, wkey, body)
    except CheckpointError:
        return False
    return True


def _read_keys(path: Path) -> list[keys.KeyRecord]:
    document = json.loads(path.read_text(encoding="utf-8"))
    return [
        keys.KeyRecord(int(k["from_size"]), str(k["vkey"]), k.get("statement"))
        for k in document["keys"]
    ]


def _key_ranges(
    pinned: VerifierKey, records: list[keys.KeyRecord] | None, origin: str
) -> tuple[list[KeyInForce] | None, keys.KeyChainError | None]:
    if records is None:
        return None, None
    ranges, error = keys.follow_chain_lenient(pinned, records, origin)
    return keys.in_force(ranges), error


def _verify_with_service(
    export: Path | None,
    pinned: list[str],
    key: str | None,
    origin: str | None,
    records: list[keys.KeyRecord] | None,
) -> tuple[VerifyResult, keys.KeyChainError | None]:
    identity = signer.log_identity()
    factory = get_db().session_factory
    if export is None and key is None and records is None and origin is None:
        return _full_verification(factory, pinned), None
    if records is None:
        with factory() as session:
            records = keys.chain(session, identity.origin)
    if key is not None:
        verifier = _parse_key(key)
        identity = signer.LogIdentity(verifier.name, verifier.public_key)
    else:  # the first key of the stored chain: an auditor should pin one instead
        first = VerifierKey.parse(records[0].vkey)
        identity = signer.LogIdentity(first.name, first.public_key)
    if origin is not None and origin != identity.origin:
        raise click.BadParameter("a different origin needs --key as well", param_hint="--origin")
    in_force, chain_error = _key_ranges(
        VerifierKey(identity.key_name, identity.public_key), records, identity.origin
    )
    if export is not None:
        result = verify_export_file(
            export, identity.public_key, identity.key_name, identity.origin, pinned, in_force
        )
        return result, chain_error
    with factory() as session:  # closed at once: no transaction spans the long read
        state = store.log_state(session)
    read = store.in_short_sessions(read_only_session)
    result = store.verify_stored(state, read, identity, pinned, in_force)
    with factory() as session:
        outcome = Outcome.SUCCESS if result.ok and chain_error is None else Outcome.FAILURE
        service.record(AuditAction.AUDIT_VERIFY, outcome=outcome, session=session)
        session.commit()
    return result, chain_error


def _full_verification(factory: Callable[[], Session], pinned: list[str]) -> VerifyResult:
    """Verify the whole stored log with its key chain; store the outcome for the route.

    Reads in read-only sessions (no write lock is held while it runs); only
    the outcome and the ``audit.verify`` entry are written, each briefly.
    """
    with read_only_session() as session:  # the checkpoints and chain; entries page by page
        outcome, row = verification.verify_service_log(
            session, store.in_short_sessions(read_only_session), full=True, pinned=pinned
        )
    verification.save(row, factory)
    with factory() as session:
        result = outcome.result
        service.record(
            AuditAction.AUDIT_VERIFY,
            outcome=Outcome.SUCCESS if result.ok else Outcome.FAILURE,
            session=session,
        )
        session.commit()
    return outcome.result


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
