"""The keyring in the running service: created by init, unsafe files refused."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from casework import create_app
from casework.cli import main
from casework.security.app import current_keyring, derived_secret, ensure_keyring, holder
from casework.security.errors import KeyringError


def _config(app_config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    return {**app_config, "instance_path": str(tmp_path / "instance")}


def test_init_creates_a_private_keyring_once(app_config: dict[str, Any], tmp_path: Path) -> None:
    application = create_app(_config(app_config, tmp_path))
    assert ensure_keyring(application) is True
    path = tmp_path / "instance" / "keyring.json"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    first = path.read_bytes()
    assert ensure_keyring(application) is False
    assert path.read_bytes() == first


def test_unsafe_keyring_file_stops_start_up(app_config: dict[str, Any], tmp_path: Path) -> None:
    config = _config(app_config, tmp_path)
    ensure_keyring(create_app(config))
    path = tmp_path / "instance" / "keyring.json"
    os.chmod(path, 0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        create_app(config)


def test_cli_reports_unsafe_keyring_in_one_line(
    app_config: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(app_config, tmp_path)
    ensure_keyring(create_app(config))
    os.chmod(tmp_path / "instance" / "keyring.json", 0o640)
    monkeypatch.setenv("CASEWORK_INSTANCE_PATH", config["instance_path"])
    monkeypatch.setenv("CASEWORK_DATABASE_URL", config["database_url"])
    result = CliRunner().invoke(main, ["db", "current"])
    assert result.exit_code == 2
    assert "chmod 600" in result.output


def test_missing_keyring_answers_503_not_500(app_config: dict[str, Any], tmp_path: Path) -> None:
    application = create_app(_config(app_config, tmp_path))
    with application.test_request_context("/"):
        from casework.errors import ServiceUnavailable

        with pytest.raises(ServiceUnavailable):
            current_keyring()


def test_rotation_by_another_process_is_picked_up(
    app_config: dict[str, Any], tmp_path: Path
) -> None:
    application = create_app(_config(app_config, tmp_path))
    ensure_keyring(application)
    keys = holder(application)
    before = keys.get().active_kek().kek_id
    other = create_app(_config(app_config, tmp_path))  # e.g. `casework keys rotate`
    ring = holder(other).get()
    ring.rotate()
    holder(other).save(ring)
    keys._checked_at = 0.0  # as if a second had passed
    assert keys.get().active_kek().kek_id != before


def test_derived_secrets_differ_by_purpose(app_config: dict[str, Any], tmp_path: Path) -> None:
    application = create_app(_config(app_config, tmp_path))
    ensure_keyring(application)
    ring = holder(application).get()
    a = derived_secret("auth/throttle", ring)
    assert a == derived_secret("auth/throttle", ring)
    assert a != derived_secret("other", ring)
    assert len(a) == 32


def test_request_sessions_carry_the_keyring(app: Any) -> None:
    from casework import db
    from casework.security.case_keys import data_key_cache

    with app.test_request_context("/"):
        cache = data_key_cache(db.session())
        assert cache.keyring.active_kek().kek_id == holder(app).get().active_kek().kek_id
