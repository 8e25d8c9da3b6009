"""Field-office sync: enrolled devices, signed requests, the change feed, exactly-once
push with conflicts kept for people. See docs/sync.md for the contract."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Authenticate signed device requests (before bearer tokens), bind sign-ins to the
    signing device, publish written cases to the feed (whose sealed snapshot of the case's
    current version the case read takes its members from), erase sync data with a case,
    and name devices to the access log's auditors."""
    from casework.audit.actors import on_resolve_actor
    from casework.cases.erasure import on_erase
    from casework.cases.service import StoredViews, store_views_in
    from casework.sync import auth, erasure, feed, service
    from casework.sync.models import CaseVersion

    app.extensions.setdefault("casework.authenticators", []).insert(0, auth.device_principal)
    app.extensions["casework.request_device"] = auth.request_device
    app.extensions.setdefault("casework.session_hooks", []).append(feed.install)
    on_erase(app, erasure.erase_sync_data)
    store_views_in(app, StoredViews(CaseVersion, feed.STORED_VIEW_COLUMNS, feed.stored_view))
    on_resolve_actor(app, service.describe_device)
