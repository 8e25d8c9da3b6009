import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from casework import config


def test_defaults_load_without_environment() -> None:
    settings = config.load(environ={})
    assert settings["port"] == 8000
    assert settings["host"] == "127.0.0.1"


def test_environment_overrides_with_types() -> None:
    settings = config.load(
        environ={"CASEWORK_PORT": "8001", "CASEWORK_MFA_REQUIRED_ROLES": "admin, auditor"}
    )
    assert settings["port"] == 8001
    assert settings["mfa_required_roles"] == ["admin", "auditor"]


def test_blind_index_width_is_not_a_setting() -> None:
    """The widths are constants of casework/cases/indexes.py (docs/encryption.md says why):
    a setting that did nothing must not let an operator believe they changed them."""
    assert "blind_index_bits" not in config.load(environ={})
    with pytest.raises(config.ConfigError, match="CASEWORK_BLIND_INDEX_BITS"):
        config.load(environ={"CASEWORK_BLIND_INDEX_BITS": "16"})


def test_unknown_environment_key_names_it() -> None:
    with pytest.raises(config.ConfigError, match="CASEWORK_FOO"):
        config.load(environ={"CASEWORK_FOO": "1"})


def test_wrong_type_names_the_key() -> None:
    with pytest.raises(config.ConfigError, match="CASEWORK_PORT"):
        config.load(environ={"CASEWORK_PORT": "eighty"})


def test_unknown_file_key_names_it(tmp_path: Path) -> None:
    (tmp_path / "default.toml").write_text("prot = 8000\n")
    with pytest.raises(config.ConfigError, match="prot"):
        config.load(environ={"CASEWORK_CONFIG_DIR": str(tmp_path)})


def test_wrong_type_in_file(tmp_path: Path) -> None:
    (tmp_path / "default.toml").write_text('workers = "two"\n')
    with pytest.raises(config.ConfigError, match="workers"):
        config.load(environ={"CASEWORK_CONFIG_DIR": str(tmp_path)})


def test_environment_file_selected(tmp_path: Path) -> None:
    (tmp_path / "staging.toml").write_text("port = 9000\n")
    settings = config.load(
        environ={"CASEWORK_CONFIG_DIR": str(tmp_path), "CASEWORK_ENV": "staging"}
    )
    assert settings["port"] == 9000


def test_missing_environment_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="nowhere"):
        config.load(environ={"CASEWORK_CONFIG_DIR": str(tmp_path), "CASEWORK_ENV": "nowhere"})


def test_bool_is_not_an_int() -> None:
    with pytest.raises(config.ConfigError):
        config.load({"port": True}, environ={})


def test_shipped_files_are_valid() -> None:
    for name in ("default", "test", "production"):
        config.load(environ={"CASEWORK_ENV": name})


def test_cli_stops_on_unknown_variable_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from casework.cli import main

    monkeypatch.setenv("CASEWORK_FOO", "1")
    result = CliRunner().invoke(main, ["db", "current"])
    assert result.exit_code == 2
    assert "CASEWORK_FOO" in result.output


def test_database_pool_covers_every_request_thread(tmp_path: Path) -> None:
    """A pool smaller than the threads closes and reopens a connection per request."""
    from casework import create_app, db

    url = f"sqlite:///{tmp_path / 'pool.db'}"
    app = create_app({"database_url": url, "instance_path": str(tmp_path), "threads": 12})
    assert db.get_db(app).engine.pool.size() == 14  # type: ignore[attr-defined]
    sized = create_app(
        {"database_url": url, "instance_path": str(tmp_path), "database_pool_size": 3}
    )
    assert db.get_db(sized).engine.pool.size() == 3  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="pool_size"):
        db.make_engine(url, pool_size=0)


@pytest.fixture
def gc_state() -> Iterator[None]:
    """The collector's thresholds and permanent generation put back after the test."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("gc_state")
def test_tune_gc_freezes_and_raises_the_young_threshold() -> None:
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    alive = [[] for _ in range(10)]  # containers alive when the worker has built its app
    assert config.tune_gc(50_000) is True
    assert gc.get_freeze_count() >= len(alive)
    assert gc.get_threshold() == (50_000, 10, 10)  # the older generations keep theirs


@pytest.mark.usefixtures("gc_state")
def test_tune_gc_zero_leaves_the_collector_alone() -> None:
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    assert config.tune_gc(0) is False
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == (700, 10, 10)
    with pytest.raises(config.ConfigError, match="gc_young_threshold"):
        config.tune_gc(-1)


def test_gc_young_threshold_setting() -> None:
    assert config.load(environ={})["gc_young_threshold"] == 50_000
    off = config.load(environ={"CASEWORK_GC_YOUNG_THRESHOLD": "0"})
    assert off["gc_young_threshold"] == 0
