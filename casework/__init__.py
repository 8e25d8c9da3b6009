"""casework: case management for NGOs that protect refugees and stateless people."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from casework import config as config_module
from casework import db, errors, http, i18n, logs
from casework.api import create_api
from casework.authz.access import check_every_route_declared

__all__ = ["create_app"]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application.

    ``config`` overrides any configuration key (tests use it); everything else
    comes from ``config/*.toml`` and ``CASEWORK_*`` variables, validated.
    """
    settings = config_module.load(config)
    instance_path = Path(settings["instance_path"]).resolve()
    app = Flask(__name__, instance_path=str(instance_path), instance_relative_config=False)
    app.config["CASEWORK"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings["max_body_bytes"]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    logs.configure(settings["log_level"])

    engine = db.make_engine(
        db.database_url(settings, instance_path),
        sqlite_busy_timeout_ms=settings["sqlite_busy_timeout_ms"],
        pool_size=settings["database_pool_size"] or settings["threads"] + 2,
    )
    app.extensions["casework.db"] = db.Database(engine)
    db.install_session_events()

    i18n.init_app(app)
    http.install(app)
    if settings["trusted_proxies"] < 0:
        raise config_module.ConfigError("trusted_proxies must be 0 or more")
    http.trust_proxies(app, settings["trusted_proxies"])
    db.install_request_transaction(app)
    api = create_api(app)
    _register_features(app, api)
    errors.install_error_handlers(app)
    check_every_route_declared(app)
    return app


def _register_features(app: Flask, api: Any) -> None:
    """Each feature package contributes its blueprint, and its hooks through ``init_app``:
    nothing registers itself at import, so every command and test that builds the app
    has every hook."""
    from casework import audit, auth, handoff, health, reports, sync, vetting, workflow
    from casework.audit import actors as audit_actors
    from casework.audit import api as audit_api
    from casework.auth import api as auth_api
    from casework.cases import api as cases_api
    from casework.codelists import api as codelists_api
    from casework.handoff import api as handoff_api
    from casework.offices import api as offices_api
    from casework.reports import api as reports_api
    from casework.security import app as security_app
    from casework.sync import api as sync_api
    from casework.vetting import api as vetting_api
    from casework.workflow import api as workflow_api

    security_app.init_app(app)
    audit.init_app(app)
    auth.init_app(app)  # after the keyring: its init step creates the first admin
    workflow.init_app(app)
    vetting.init_app(app)
    handoff.init_app(app)
    sync.init_app(app)  # after auth: signed device requests authenticate first
    reports.init_app(app)
    cases_api.register_converter(app, api)
    api.register_blueprint(health.blp)
    api.register_blueprint(auth_api.blp)
    api.register_blueprint(auth_api.users_blp)
    api.register_blueprint(offices_api.blp)
    api.register_blueprint(cases_api.blp)
    api.register_blueprint(cases_api.alerts_blp)
    api.register_blueprint(cases_api.erasure_blp)
    api.register_blueprint(audit_api.blp)
    api.register_blueprint(audit_actors.blp)
    api.register_blueprint(workflow_api.blp)
    api.register_blueprint(vetting_api.blp)
    api.register_blueprint(handoff_api.blp)
    api.register_blueprint(codelists_api.blp)
    api.register_blueprint(sync_api.devices_blp)
    api.register_blueprint(sync_api.sync_blp)
    api.register_blueprint(reports_api.blp)
