"""Identity settings: OWASP floor outside tests, unknown MFA roles refused."""

from __future__ import annotations

from typing import Any

import pytest

from casework import create_app
from casework.auth.settings import password_params
from casework.authz.permissions import STAFF_ROLES, Permission, permissions_for
from casework.config import ConfigError


def test_cheap_hashing_is_refused_outside_testing(app_config: dict[str, Any]) -> None:
    application = create_app(app_config)  # test.toml lowers the costs; TESTING is off
    with application.app_context(), pytest.raises(ConfigError, match="OWASP"):
        password_params()
    application.config["TESTING"] = True
    with application.app_context():
        assert password_params().memory_kib == 1024


def test_owasp_costs_are_accepted(app_config: dict[str, Any]) -> None:
    config = {**app_config, "password_hash_memory_kib": 19456, "password_hash_time_cost": 2}
    application = create_app(config)
    with application.app_context():
        assert password_params().meets_owasp_minimum()


def test_unknown_mfa_role_stops_start_up(app_config: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="supervsor"):
        create_app({**app_config, "mfa_required_roles": ["admin", "supervsor"]})


def test_every_role_that_reads_case_data_needs_mfa_by_default(app_config: dict[str, Any]) -> None:
    from casework.auth.settings import DEFAULT_MFA_ROLES, mfa_required

    readers = {r for r in STAFF_ROLES if Permission.CASES_READ in permissions_for(r)}
    assert {"caseworker", "vetting_officer", "supervisor"} <= readers <= DEFAULT_MFA_ROLES
    application = create_app(app_config)
    with application.app_context():
        assert all(mfa_required(role) for role in STAFF_ROLES)


def test_configuration_adds_mfa_roles_but_never_removes_the_defaults(
    app_config: dict[str, Any],
) -> None:
    from casework.auth.settings import mfa_required, mfa_required_for

    application = create_app({**app_config, "mfa_required_roles": ["admin"]})
    with application.app_context():
        for role in ("caseworker", "vetting_officer", "supervisor", "auditor"):
            assert mfa_required(role), role
        assert not mfa_required_for("caseworker", office_exempt=True)  # only an office exempts
        assert mfa_required_for("caseworker", office_exempt=True, enrolment_due=True)
