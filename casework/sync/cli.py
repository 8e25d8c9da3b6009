"""``casework sync``: maintenance of the field-office change feed."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from casework.db import get_db
from casework.security.app import holder
from casework.security.case_keys import attach_keyring
from casework.sync import feed


@click.group("sync")
def sync_group() -> None:
    """Field-office sync: the change feed devices pull."""


@sync_group.command("backfill")
@with_appcontext
def backfill_command() -> None:
    """Publish to the change feed every live case that has no entry yet.

    For cases written in bulk (imports, seeding) or before sync was installed: it
    seals each case's view for devices and gives it a feed entry, committing every
    500 cases. Safe to run again: a case already in the feed is skipped.
    """
    with get_db().session_factory() as session:
        attach_keyring(session, holder(current_app).get())
        published = feed.backfill(session, on_batch=session.commit)
        session.commit()
    click.echo(f"published {published} cases to the change feed")
