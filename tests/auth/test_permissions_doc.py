"""docs/permissions.md is generated from the permission table and must not drift."""

from __future__ import annotations

from pathlib import Path

from casework.authz.permissions import (
    OFFICELESS_ROLES,
    PERMISSION_SUMMARIES,
    ROLE_PERMISSIONS,
    ROLE_SUMMARIES,
    STAFF_ROLES,
    Permission,
    render_markdown,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"
REGENERATE = (
    '.venv/bin/python -c "from casework.authz.permissions import render_markdown as r; '
    "print(r(), end='')\" > docs/permissions.md"
)


def test_document_matches_the_table() -> None:
    assert DOC.read_text(encoding="utf-8") == render_markdown(), f"regenerate: {REGENERATE}"


def test_every_role_and_permission_is_described() -> None:
    assert set(ROLE_SUMMARIES) == set(ROLE_PERMISSIONS)
    assert set(PERMISSION_SUMMARIES) == set(Permission)


def test_role_shapes() -> None:
    cw, vo, sup = (ROLE_PERMISSIONS[r] for r in ("caseworker", "vetting_officer", "supervisor"))
    assert cw < vo < sup
    assert ROLE_PERMISSIONS["auditor"] == {
        Permission.SELF,
        Permission.CODES_READ,
        Permission.AUDIT_READ,
        Permission.AUDIT_CHECKPOINT,
    }
    assert all(Permission.CODES_READ in granted for granted in ROLE_PERMISSIONS.values())
    assert "device" not in STAFF_ROLES
    assert Permission.SELF not in ROLE_PERMISSIONS["device"]
    assert {"admin", "auditor", "integrity_officer", "analyst"} == OFFICELESS_ROLES
    assert ROLE_PERMISSIONS["integrity_officer"] == {
        Permission.SELF,
        Permission.CODES_READ,
        Permission.ALERTS_READ,
        Permission.ALERTS_CROSS_OFFICE,
    }
    # The analyst sees statistics only: no case, no log, no administration.
    assert ROLE_PERMISSIONS["analyst"] == {
        Permission.SELF,
        Permission.CODES_READ,
        Permission.REPORTS_READ,
        Permission.REPORTS_ALL_OFFICES,
    }
    assert Permission.REPORTS_ALL_OFFICES not in ROLE_PERMISSIONS["supervisor"]
    admin = ROLE_PERMISSIONS["admin"]
    for needed in (
        Permission.OFFICES_WRITE,
        Permission.USERS_WRITE,
        Permission.DEVICES_MANAGE,
        Permission.KEYS_MANAGE,
    ):
        assert needed in admin
