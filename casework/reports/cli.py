"""``casework retention run [--dry-run]``: erase the cases the approved policy says are due.

Schedule it daily (docs/retention.md has a cron line and a systemd timer).
It prints case references only (random, not personal) and counts.
"""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from casework.db import get_db
from casework.reports import retention
from casework.security.app import holder
from casework.security.case_keys import attach_keyring


@click.group("retention")
def retention_group() -> None:
    """Retention: erase cases whose retention period has passed."""


BATCH = 100
"""Cases erased per transaction: a long run commits as it goes and can be run again."""


@retention_group.command("run")
@click.option("--dry-run", is_flag=True, help="List the cases due; erase nothing.")
@with_appcontext
def run_command(dry_run: bool) -> None:
    """Erase (or with --dry-run list) every case due under the approved policy."""
    factory = get_db().session_factory
    try:
        with factory() as session, session.begin():
            due = retention.run(session, dry_run=True)
        erased: list[str] = []
        for start in range(0, 0 if dry_run else len(due), BATCH):
            with factory() as session, session.begin():
                attach_keyring(session, holder(current_app).get())
                batch = due[start : start + BATCH]
                erased += retention.run(session, dry_run=False, references=batch)
    except retention.NoActivePolicy as exc:
        raise click.ClickException(exc.detail) from None
    for reference in due if dry_run else erased:
        click.echo(reference)
    verb = "due (dry run, nothing erased)" if dry_run else "erased"
    click.echo(f"{len(due if dry_run else erased)} case(s) {verb}.", err=True)
