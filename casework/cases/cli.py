"""Commands: ``casework cases seed`` and ``casework keys reindex``.

Both are transaction boundaries of their own and commit in batches, so a run
over a million cases holds no long transaction and can be repeated after an
interruption.
"""

from __future__ import annotations

import time

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select

from casework.cases import service
from casework.cases.models import BlindIndexEntry
from casework.cases.seeding import seed_cases
from casework.db import get_db
from casework.errors import CaseworkError
from casework.keys.cli import keyring_lock, require_writable
from casework.security.app import holder
from casework.security.case_keys import attach_keyring


@click.group("cases")
def cases_group() -> None:
    """Cases: synthetic data for benchmarks."""


@cases_group.command("seed")
@click.option("--count", type=click.IntRange(1, 10_000_000), required=True)
@click.option("--office", required=True, help="Office code; created if it does not exist.")
@click.option("--seed", "seed_value", type=int, default=1, show_default=True)
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=500, show_default=True)
@with_appcontext
def seed_command(count: int, office: str, seed_value: int, batch_size: int) -> None:
    """Write COUNT synthetic households (no HTTP) for the benchmark harness."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    started = time.perf_counter()
    with get_db(app).session_factory() as session:
        attach_keyring(session, holder(app).get())
        try:
            references = seed_cases(
                session, count=count, office=office, seed=seed_value, batch_size=batch_size
            )
        except CaseworkError as exc:
            raise click.ClickException(exc.detail) from None
    elapsed = time.perf_counter() - started
    click.echo(f"seeded {len(references)} cases for {office} in {elapsed:.1f} s")


@click.command("reindex")
@click.option(
    "--new-root", is_flag=True, help="First add a new blind-index root to the keyring and save it."
)
@click.option(
    "--drop-old-roots",
    is_flag=True,
    help="Afterwards remove older roots from the keyring (refused while entries still use them).",
)
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=200, show_default=True)
@with_appcontext
def reindex_command(new_root: bool, drop_old_roots: bool, batch_size: int) -> None:
    """Recompute every case blind index under the current (or a new) blind-index root.

    Searches keep working throughout: lookups read every root in the keyring.
    """
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    keys = holder(app)
    if new_root or drop_old_roots:
        require_writable(keys, "reindex")
    with keyring_lock(keys):
        keyring = keys.provider.load()
        if new_root:
            keyring.new_blind_index_root()
            keys.save(keyring)
        version = keyring.blind_index_root().version
        with get_db(app).session_factory() as session:
            attach_keyring(session, keyring)
            written = service.reindex_all(
                session, keyring, batch_size=batch_size, on_batch=session.commit
            )
            session.commit()
            stale = session.scalar(
                select(func.count())
                .select_from(BlindIndexEntry)
                .where(BlindIndexEntry.root_version != version)
            )
        click.echo(f"recomputed {written} blind-index entries under root version {version}")
        if drop_old_roots:
            if stale:
                raise click.ClickException(
                    f"{stale} entries still use older roots (written while this ran): run again"
                )
            for root in keyring.blind_index_roots[:-1]:
                keyring.drop_blind_index_root(root.version)
            keys.save(keyring)
            click.echo("older blind-index roots removed from the keyring")
