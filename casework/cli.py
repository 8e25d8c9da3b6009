"""The ``casework`` command: a Flask CLI group with casework's own commands.

``casework init`` prepares a machine (instance folder, schema); ``casework
serve`` runs gunicorn; ``casework db ...`` drives Alembic. Features add their
command groups in :func:`_add_feature_commands`.
"""

from __future__ import annotations

import os
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from casework import config as config_module
from casework import create_app, migrate
from casework.audit.cli import audit_group
from casework.auth.cli import create_user_command
from casework.cases.cli import cases_group, reindex_command
from casework.db import get_db
from casework.handoff.cli import handoff_group
from casework.keys.cli import keys_group
from casework.reports.cli import retention_group
from casework.security.errors import KeyringError


def _make_app() -> Flask:
    return create_app()


_KIND = {
    "ConfigError": "configuration error",
    "KeyringError": "keyring error",
    "UnknownKeyError": "keyring error",
}


class CaseworkGroup(FlaskGroup):
    """Turns a configuration error into one clear line and exit status 2."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().main(*args, **kwargs)
        except (config_module.ConfigError, KeyringError) as exc:
            click.echo(f"casework: {_KIND[type(exc).__name__]}: {exc}", err=True)
            raise SystemExit(2) from None


@click.group(
    cls=CaseworkGroup,
    create_app=_make_app,
    add_version_option=False,
    load_dotenv=False,
    set_debug_flag=False,
)
def main() -> None:
    """casework: case management for refugee and statelessness protection."""


@main.command("init")
@with_appcontext
def init_command() -> None:
    """Create the instance folder and bring the database to the latest schema.

    Idempotent: running it again keeps every case and key.
    """
    os.makedirs(current_app.instance_path, mode=0o700, exist_ok=True)
    migrate.upgrade(get_db().engine)
    for step in current_app.extensions.get("casework.init_steps", []):
        step()
    click.echo("casework is initialised.")


@main.group("db")
def db_group() -> None:
    """Database schema migrations (Alembic)."""


@db_group.command("upgrade")
@click.argument("revision", default="heads")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Upgrade the schema to REVISION (default: the latest)."""
    os.makedirs(current_app.instance_path, mode=0o700, exist_ok=True)
    migrate.upgrade(get_db().engine, revision)


@db_group.command("downgrade")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Downgrade the schema to REVISION (``base`` removes every table)."""
    migrate.downgrade(get_db().engine, revision)


@db_group.command("current")
@with_appcontext
def db_current() -> None:
    """Print the revisions the database is at, and whether that is the head."""
    with get_db().engine.connect() as connection:
        revisions = migrate.current_revisions(connection)
        at_head = migrate.is_at_head(connection)
    click.echo(f"{', '.join(sorted(revisions)) or '(empty)'}{' (head)' if at_head else ''}")


@main.command("serve")
@click.option("--host", default=None, help="Address to bind (CASEWORK_HOST; 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (CASEWORK_PORT; 8000).")
@click.option("--workers", type=int, default=None, help="Worker processes (CASEWORK_WORKERS).")
def serve_command(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the API with gunicorn."""
    from gunicorn.app.base import BaseApplication

    settings = config_module.load()
    options: dict[str, Any] = {
        "bind": f"{host or settings['host']}:{port or settings['port']}",
        "workers": workers or settings["workers"],
        # Threads keep slow clients (field offices on poor links) from blocking a worker.
        "worker_class": "gthread",
        "threads": settings["threads"],
        "accesslog": None,  # casework logs each request itself, without query strings
        "errorlog": "-",
        "timeout": 60,
        "graceful_timeout": 20,
        "limit_request_line": 8190,
    }

    class CaseworkServer(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Flask:
            return create_app()

    create_app()  # fail fast, in the foreground, on a configuration error
    click.echo(f"casework serving on http://{options['bind']}")
    CaseworkServer().run()


main.add_command(create_user_command)
main.add_command(audit_group)
main.add_command(keys_group)
main.add_command(cases_group)
main.add_command(handoff_group)
main.add_command(retention_group)
keys_group.add_command(reindex_command)
