"""Recording: same transaction as the change, chained, refusals kept."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casework import audit, create_app
from casework.audit.encoding import GENESIS_HASH, entry_hash
from casework.audit.models import AuditEntry
from casework.authz.access import Principal, register_authenticator, requires
from casework.authz.permissions import Permission
from casework.db import get_db


def _entries(session: Session) -> list[AuditEntry]:
    return list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))


def test_record_chains_entries(db_session: Session) -> None:
    before = db_session.scalar(select(func.count()).select_from(AuditEntry))
    first = audit.record(audit.AuditAction.KEYS_ROTATE, session=db_session)
    second = audit.record(
        audit.AuditAction.CASE_READ,
        target="ABC",
        fields=["sex", "full_name", "sex"],
        session=db_session,
    )
    assert second.seq == first.seq + 1 == before + 2
    assert second.prev_hash == first.hash
    assert second.record.fields == ("full_name", "sex")
    assert second.hash == entry_hash(first.hash, second.record)
    stored = _entries(db_session)
    if first.seq == 1:
        assert stored[0].prev_hash == GENESIS_HASH
    assert [e.to_chained() for e in stored[-2:]] == [first, second]
    assert stored[-1].role == "system"


def test_entries_cannot_be_changed_through_the_orm(db_session: Session) -> None:
    audit.record(audit.AuditAction.KEYS_ROTATE, session=db_session)
    entry = _entries(db_session)[-1]
    entry.action = "case.read"
    with pytest.raises(RuntimeError, match="append-only"):
        db_session.flush()


@pytest.fixture
def guarded_app(app_config: dict[str, Any]) -> Flask:
    """An app with a test authenticator and two routes: one that writes, one guarded."""
    application = create_app(app_config)
    register_authenticator(
        application, lambda: Principal.for_role("auditor", user_id="u-aud", office=None)
    )

    @application.route("/_test/fails-after-audit", methods=["POST"])
    @requires(Permission.AUDIT_READ)
    def _fails() -> None:
        audit.record(audit.AuditAction.CASE_UPDATE, target="REF1")
        raise RuntimeError("boom")

    @application.route("/_test/cases/<reference>")
    @requires(Permission.CASES_READ)
    def _guarded(reference: str) -> dict[str, str]:
        return {"reference": reference}

    return application


def test_rolled_back_request_leaves_no_entry(
    guarded_app: Flask, db_session: Session, connection: Any
) -> None:
    _use_test_connection(guarded_app, connection)
    before = len(_entries(db_session))
    response = guarded_app.test_client().post("/_test/fails-after-audit")
    assert response.status_code == 500
    assert len(_entries(db_session)) == before


def test_denied_request_leaves_one_denied_entry(
    guarded_app: Flask, db_session: Session, connection: Any
) -> None:
    _use_test_connection(guarded_app, connection)
    before = len(_entries(db_session))
    response = guarded_app.test_client().get("/_test/cases/REF42")
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    new = _entries(db_session)[before:]
    assert [(e.action, e.outcome, e.target, e.actor, e.role) for e in new] == [
        ("authz.denied", "denied", "REF42", "u-aud", "auditor")
    ]


def _use_test_connection(application: Flask, connection: Any) -> None:
    def factory() -> Session:
        return Session(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )

    get_db(application).session_factory = factory  # type: ignore[assignment]
