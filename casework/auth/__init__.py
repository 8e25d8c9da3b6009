"""Identity and access: staff accounts, roles -> permissions, tokens, MFA, throttling.

Importing this package stays cheap; :func:`init_app` pulls in the rest.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Check the identity settings, authenticate bearer tokens, create the first admin
    in ``casework init`` (after the keyring step, which registers earlier)."""
    from casework.auth import cli, sessions, settings
    from casework.authz.access import register_authenticator
    from casework.offices import service as offices

    settings.check(app)
    register_authenticator(app, sessions.bearer_principal)
    offices.on_deactivate(app, sessions.revoke_office_tokens)
    app.extensions.setdefault("casework.init_steps", []).append(lambda: cli.first_admin_step(app))
