"""``casework keys``: rotate, inspect and retire the key-encryption keys (KEKs).

The command is the transaction boundary: each batch of re-wrapped keys is
committed on its own, so a rotation killed half-way keeps what it did and
``casework keys rotate --resume`` finishes it; re-running is harmless because
only rows behind the active KEK are touched. Commands that rewrite the keyring
file hold an exclusive lock beside it: two rotations saving the file at once
would each overwrite the other's new KEK, and rows wrapped under the lost one
could never be opened again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy.orm import Session

from casework import audit
from casework.audit import AuditAction
from casework.db import Base, get_db
from casework.keys import service as keys_service
from casework.keys.rotation import DEFAULT_BATCH_SIZE
from casework.keys.service import KINDS, KeysRefused, KeyStatus, SealedKind
from casework.security.app import KeyringHolder, holder
from casework.security.case_keys import attach_keyring
from casework.security.columns import seal_unsealed_rows, sealed_models
from casework.security.errors import KeyringError
from casework.security.keyring import Kek, Keyring, KeyState, is_kek_id, utc_now
from casework.security.keyring_providers import FileKeyringProvider

RELOAD_GRACE_SECONDS = 2.0
"""Running workers re-read a changed keyring file within a second (casework.security.app);
the last pass of a new rotation starts no earlier than this after the save, so keys those
workers wrapped under the old KEK meanwhile are re-wrapped too."""


@dataclass(frozen=True)
class Progress:
    """Reported after each committed batch."""

    kind: SealedKind
    batch: int
    done: int
    behind: int


@click.group("keys")
def keys_group() -> None:
    """Key-encryption keys: rotate, status, retire, shred (see docs/encryption.md)."""


@contextlib.contextmanager
def transaction(app: Flask) -> Iterator[Session]:
    """One committed unit of work (rolled back if the block raises)."""
    with get_db(app).session_factory() as session, session.begin():
        yield session


@contextlib.contextmanager
def keyring_lock(keys: KeyringHolder) -> Iterator[None]:
    """Hold ``<keyring file>.lock`` exclusively, or fail at once if another command holds it.

    The lock (``flock``) is released by the kernel if the process dies, so a
    killed rotation never leaves it stuck. Keyrings that are not files cannot
    be rewritten here, so they need no lock.
    """
    if not isinstance(keys.provider, FileKeyringProvider):
        yield
        return
    path = keys.provider.path.with_name(keys.provider.path.name + ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise click.ClickException(
                f"another casework keys command is running (it holds {path}); wait for it to finish"
            ) from None
        yield
    finally:
        os.close(fd)


def require_writable(keys: KeyringHolder, command: str) -> None:
    """Raise KeyringError when the keyring cannot be saved (it comes from the environment)."""
    if not isinstance(keys.provider, FileKeyringProvider):
        raise KeyringError(
            f"casework keys {command} rewrites the keyring, but {keys.provider!r} is read-only: "
            "make the change in your secret manager, after checking casework keys status"
        )


Begin = Callable[[Session, Keyring], tuple[Kek, Kek] | None]
"""Makes a new KEK active in the keyring (recording it); returns ``(old, new)``, or None
when there is nothing to begin (the job only resumes)."""


@contextlib.contextmanager
def rewrap_job(
    app: Flask,
    keys: KeyringHolder,
    begin: Begin | None,
    *,
    batch_size: int,
    announce: str,
) -> Iterator[tuple[Keyring, dict[str, int]]]:
    """Under the keyring lock: begin, re-wrap everything behind, then let the caller finish.

    Yields the keyring as the file holds it and the rows re-wrapped by kind;
    the caller's block (retiring KEKs, the closing access-log entry) still runs
    under the lock. A new KEK is saved to the keyring file before the commit that
    records it and before anything is wrapped under it, so a process killed at any
    point leaves every row wrapped under a KEK the file holds. ``announce`` is
    printed with ``{old}`` and ``{new}`` filled in when a KEK was made active.
    Raises ClickException when ``begin`` refuses (KeysRefused).
    """
    with keyring_lock(keys):
        keyring = keys.provider.load()  # the file as it is now, not a cached copy
        settle_until = None
        if begin is not None:
            try:
                with transaction(app) as session:
                    started = begin(session, keyring)
                    if started is not None:
                        keys.save(keyring)  # before the commit and before any re-wrap
            except KeysRefused as refusal:
                raise click.ClickException(str(refusal)) from None
            if started is not None:
                settle_until = time.monotonic() + RELOAD_GRACE_SECONDS
                click.echo(announce.format(old=started[0].kek_id, new=started[1].kek_id))
        done = rewrap_all(
            app, keyring, batch_size=batch_size, on_batch=_print_progress, settle_until=settle_until
        )
        yield keyring, done


def rewrap_all(
    app: Flask,
    keyring: Keyring,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: Callable[[Progress], None] = lambda _progress: None,
    settle_until: float | None = None,
) -> dict[str, int]:
    """Re-wrap everything behind the active KEK, one committed batch at a time.

    Returns rows re-wrapped by kind. A pass walks case ids in order with a
    cursor; when it ends, one more pass from the start picks up rows that were
    locked by another job or written behind the cursor by a worker that had
    not yet reloaded the keyring. That last pass waits until ``settle_until``
    (a ``time.monotonic()`` value), by when every worker has the new keyring.
    The job stops after a pass from the start finds nothing to do, so rows
    locked for good cannot keep it running.
    """
    with transaction(app) as session:
        behind = keys_service.key_status(session, keyring).behind()
    done: dict[str, int] = {}
    for kind in KINDS:
        done[kind.name], batch, after = 0, 0, None
        while True:
            with transaction(app) as session:
                result = kind.rewrap(session, keyring, after, batch_size)
            if not result.count:
                if after is None:
                    if settle_until is None:
                        break
                    wait_for_workers(settle_until)
                    settle_until = None
                after = None
                continue
            batch += 1
            done[kind.name] += result.count
            after = result.cursor
            remaining = max(behind[kind.name] - done[kind.name], 0)
            on_batch(Progress(kind, batch, done[kind.name], remaining))
    return done


def wait_for_workers(deadline: float) -> None:
    """Sleep until ``deadline`` (``time.monotonic()``), saying why if it is noticeable."""
    pause = deadline - time.monotonic()
    if pause > 0:
        click.echo(f"waiting {pause:.1f} s for running workers to load the new keyring")
        time.sleep(pause)


def _print_progress(progress: Progress) -> None:
    click.echo(
        f"{progress.kind.label}: batch {progress.batch}, {progress.done} re-wrapped, "
        f"{progress.behind} behind"
    )


@keys_group.command("rotate")
@click.option(
    "--resume",
    is_flag=True,
    help="Finish an interrupted rotation: re-wrap what is behind, without a new KEK.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Keys re-wrapped per committed transaction.",
)
@with_appcontext
def rotate_command(resume: bool, batch_size: int) -> None:
    """Make a new KEK active and re-wrap every case key and MFA seed under it.

    Safe to interrupt: run it again with --resume to finish.
    """
    app = current_app
    keys = holder(app)
    if not resume:
        require_writable(keys, "rotate")
    begin = None if resume else keys_service.begin_rotation
    announce = "KEK {new} is active; KEK {old} is decrypt-only until re-wrapped."
    job = rewrap_job(app, keys, begin, batch_size=batch_size, announce=announce)
    with job as (keyring, done), transaction(app) as session:
        status = keys_service.key_status(session, keyring)
        if any(done.values()):
            keys_service.record_rotation(session, keyring, done, status.behind())
    _report_rotation(done, status)


def _report_rotation(done: dict[str, int], status: KeyStatus) -> None:
    click.echo(f"re-wrapped under KEK {status.active_kek}: {_counts(done)}")
    lost = status.unreadable()
    if any(lost.values()):
        click.echo(
            f"warning: {_counts(lost)} sit under a destroyed or unknown KEK and stay unreadable"
        )
    left = status.behind()
    if any(left.values()):
        raise click.ClickException(
            f"{_counts(left)} are still behind (locked by another job, or written by a worker "
            "that had not yet reloaded the keyring): run casework keys rotate --resume"
        )
    idle = [k.kek_id for k in status.keks if k.state == KeyState.DECRYPT_ONLY]
    for kek_id in idle:
        click.echo(
            f"KEK {kek_id} protects nothing now; destroy it with: casework keys retire {kek_id}"
        )


def _counts(counts: dict[str, int]) -> str:
    labels = {kind.name: kind.label for kind in KINDS}
    return ", ".join(f"{count} {labels.get(name, name)}" for name, count in counts.items())


@keys_group.command("shred")
@click.option(
    "--if-due",
    is_flag=True,
    help="Do nothing unless the oldest pending erasure is shred_after_hours old (for a timer).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Keys re-wrapped per committed transaction.",
)
@with_appcontext
def shred_command(if_due: bool, batch_size: int) -> None:
    """Make erased cases unrecoverable from every copy of the database.

    Re-wraps every live case key and MFA seed under a fresh KEK, then destroys
    every older KEK: a wrapped key of an erased case left in a backup, a
    replica, WAL or a dead row can no longer be opened. Safe to interrupt: run
    it again and it resumes without starting another KEK.
    """
    app = current_app
    keys = holder(app)
    keyring = keys.provider.load()
    with transaction(app) as session:
        status = keys_service.shred_status(session, keyring)
    after = timedelta(hours=app.config["CASEWORK"]["shred_after_hours"])
    if if_due and not keys_service.shred_due(status, utc_now(), after):
        click.echo(f"no shred due ({status.pending} erasure(s) pending)")
        return
    require_writable(keys, "shred")
    announce = "KEK {new} is active; older KEKs will be destroyed."
    begin = keys_service.begin_shred
    with rewrap_job(app, keys, begin, batch_size=batch_size, announce=announce) as (keyring, done):
        try:
            with transaction(app) as session:
                if any(done.values()):
                    left = keys_service.key_status(session, keyring).behind()
                    keys_service.record_rotation(session, keyring, done, left)
                destroyed = keys_service.finish_shred(session, keyring)
                keys.save(keyring)  # before the commit: no entry for a shred not saved
        except KeysRefused as refusal:
            raise click.ClickException(str(refusal)) from None
    click.echo(
        f"re-wrapped under KEK {keyring.active_kek().kek_id}: {_counts(done)}; "
        f"destroyed KEK(s): {', '.join(destroyed) or 'none'}"
    )


@keys_group.command("seal-rows")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Rows sealed per committed transaction.",
)
@with_appcontext
def seal_rows_command(batch_size: int) -> None:
    """Give rows written before row seals existed their first seal (once, after upgrading).

    A row with sealed values and no seal refuses to open; this vouches for the
    rows as they are now, so run it right after the migration, before serving.
    """
    app = current_app
    keyring = holder(app).provider.load()
    total = 0
    for model in sealed_models(Base):
        while True:
            with transaction(app) as session:
                attach_keyring(session, keyring)
                done = seal_unsealed_rows(session, model, limit=batch_size)
            total += done
            if done < batch_size:
                break
    with transaction(app) as session:
        audit.record(AuditAction.KEYS_SEAL_ROWS, target=f"rows={total}", session=session)
    click.echo(f"sealed {total} row(s)")


@keys_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@with_appcontext
def status_command(as_json: bool) -> None:
    """Show each KEK's state and the keys under it, and the blind-index root versions."""
    app = current_app
    keyring = holder(app).provider.load()
    with transaction(app) as session:
        status = keys_service.key_status(session, keyring)
    if as_json:
        click.echo(json.dumps(status.as_json(), indent=2))
        return
    click.echo(_status_table(status))


def _status_table(status: KeyStatus) -> str:
    labels = [kind.label for kind in KINDS if kind.name in status.kinds]
    lines = [f"{'KEK':<10}{'state':<14}{'created':<27}" + "".join(f"{x:>12}" for x in labels)]
    for kek in status.keks:
        created = kek.created_at.isoformat() if kek.created_at else "-"
        counts = "".join(f"{kek.counts[name]:>12}" for name in status.kinds)
        lines.append(f"{kek.kek_id:<10}{kek.state:<14}{created:<27}{counts}")
    lines.append(f"behind the active KEK {status.active_kek}: {_counts(status.behind())}")
    lost = status.unreadable()
    if any(lost.values()):
        lines.append(f"unreadable (destroyed or unknown KEK): {_counts(lost)}")
    current = max(version for version, _ in status.blind_index_roots)
    roots = ", ".join(
        f"version {version}{' (current)' if version == current else ''} created {at.isoformat()}"
        for version, at in status.blind_index_roots
    )
    lines.append(f"blind-index roots: {roots}")
    if status.shred is not None and status.shred.pending:
        oldest = status.shred.oldest.isoformat() if status.shred.oldest else "-"
        lines.append(
            f"pending shred: {status.shred.pending} erasure(s) since {oldest}; "
            "run casework keys shred"
        )
    return "\n".join(lines)


@keys_group.command("retire")
@click.argument("kek_id")
@with_appcontext
def retire_command(kek_id: str) -> None:
    """Destroy KEK_ID's key material; refused while any key or MFA seed still uses it."""
    if not is_kek_id(kek_id):
        raise click.BadParameter("a KEK id is 8 lowercase hex digits", param_hint="KEK_ID")
    app = current_app
    keys = holder(app)
    require_writable(keys, "retire")
    with keyring_lock(keys):
        keyring = keys.provider.load()
        try:
            with transaction(app) as session:
                keys_service.retire(session, keyring, kek_id)
                keys.save(keyring)  # before the commit: no entry for a retirement not saved
        except KeysRefused as refusal:
            with transaction(app) as session:
                keys_service.record_refused_retire(session, refusal)
            raise click.ClickException(str(refusal)) from None
    click.echo(f"KEK {kek_id} is destroyed: its key material is gone from the keyring.")
