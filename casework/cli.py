"""The ``casework`` command: a Flask CLI group with casework's own commands.

``casework init`` prepares a machine (instance folder, schema); ``casework
serve`` runs gunicorn; ``casework db ...`` drives Alembic. Features add their
command groups in :func:`_add_feature_commands`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from casework import config as config_module
from casework import create_app, migrate
from casework.audit.cli import audit_group
from casework.auth.cli import create_user_command
from casework.cases.cli import cases_group, reindex_command
from casework.codelists.catalog import i18n_group
from casework.db import get_db
from casework.handoff.cli import handoff_group
from casework.keys.cli import keys_group
from casework.reports.cli import retention_group
from casework.security.errors import KeyringError
from casework.sync.cli import sync_group


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
    notice = _initialise(current_app)
    click.echo("casework is initialised.")
    if notice:
        click.echo(frame(notice))


def _initialise(app: Flask) -> list[str]:
    """Migrate and run every feature's init step; returns the lines the steps want shown
    to the operator (the first admin's one-time password, once)."""
    os.makedirs(app.instance_path, mode=0o700, exist_ok=True)
    migrate.upgrade(get_db(app).engine)
    notice: list[str] = []
    for step in app.extensions.get("casework.init_steps", []):
        shown = step()  # a step returns the lines to show, or anything else for none
        notice.extend(shown if isinstance(shown, list) else [])
    return notice


def frame(lines: list[str]) -> str:
    """``lines`` in a box, so that a one-time secret stands out at the end of the output."""
    width = max(len(line) for line in lines)
    rule = "+" + "-" * (width + 2) + "+"
    return "\n".join([rule, *(f"| {line.ljust(width)} |" for line in lines), rule])


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
@click.option("--threads", type=int, default=None, help="Threads per worker (CASEWORK_THREADS).")
@click.option("--init", "run_init", is_flag=True, help="Run `casework init` first (make run).")
def serve_command(
    host: str | None,
    port: int | None,
    workers: int | None,
    threads: int | None,
    run_init: bool,
) -> None:
    """Serve the API with gunicorn: gthread workers, 2 x 8 by default (docs/performance.md)."""
    from gunicorn.app.base import BaseApplication

    settings = config_module.load()
    app = create_app()  # fail fast, in the foreground, on a configuration error
    notice = _initialise(app) if run_init else []
    options = gunicorn_options(settings, host=host, port=port, workers=workers, threads=threads)
    ready = (
        f"casework serving on http://{options['bind']} "
        f"({options['workers']} workers x {options['threads']} threads)"
    )

    def when_ready(_server: Any) -> None:
        click.echo(ready)
        if notice:
            click.echo(frame(notice))

    options["when_ready"] = when_ready

    class CaseworkServer(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Flask:  # the pool is sized by the threads actually run
            return create_app({"threads": options["threads"]})

    CaseworkServer().run()


def gunicorn_options(
    settings: dict[str, Any],
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """gunicorn's settings for ``casework serve``.

    gthread, ``workers`` x ``threads`` (2 x 8 measured best on two cores): threads keep
    slow clients (field offices on poor links) and an argon2id login from holding a whole
    process. The control socket lives in the instance folder (mode 0600), so two
    instances on one host never share one; ``control_socket = "off"`` disables it.
    ``post_worker_init`` tunes a worker's garbage collector once it has built its app
    (``gc_young_threshold``; ``wsgi.py`` does the same under an external gunicorn).
    """
    young_threshold = settings["gc_young_threshold"]
    if young_threshold < 0:  # in the foreground, not in every worker it would stop
        raise config_module.ConfigError("gc_young_threshold must be 0 or more")

    def post_worker_init(_worker: Any) -> None:
        config_module.tune_gc(young_threshold)

    control = settings["control_socket"]
    instance = Path(settings["instance_path"]).resolve()
    options: dict[str, Any] = {
        "bind": f"{host or settings['host']}:{port or settings['port']}",
        "workers": workers or settings["workers"],
        "worker_class": "gthread",
        "threads": threads or settings["threads"],
        "accesslog": None,  # casework logs each request itself, without query strings
        "errorlog": "-",
        "loglevel": "warning",  # start-up chatter off: casework says where it serves
        "timeout": 60,
        "graceful_timeout": 20,
        "limit_request_line": 8190,
        "post_worker_init": post_worker_init,
    }
    if control == "off":
        options["control_socket_disable"] = True
    else:
        options["control_socket"] = str(instance / (control or "gunicorn.ctl"))
        options["control_socket_mode"] = 0o600
    return options


main.add_command(create_user_command)
main.add_command(audit_group)
main.add_command(keys_group)
main.add_command(cases_group)
main.add_command(handoff_group)
main.add_command(i18n_group)
main.add_command(retention_group)
main.add_command(sync_group)
keys_group.add_command(reindex_command)
