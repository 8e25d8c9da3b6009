from pathlib import Path
from typing import Any

import pytest

from casework import config
from casework.cli import gunicorn_options


def _settings(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    return config.load({"instance_path": str(tmp_path), **overrides}, environ={})


def test_workers_tune_the_collector_once_the_app_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``post_worker_init`` runs in each worker after it loaded the app (gunicorn)."""
    calls: list[int] = []
    monkeypatch.setattr(config, "tune_gc", calls.append)
    options = gunicorn_options(_settings(tmp_path, gc_young_threshold=30_000))
    options["post_worker_init"](object())
    assert calls == [30_000]


def test_the_hook_is_a_valid_gunicorn_setting(tmp_path: Path) -> None:
    from gunicorn.config import Config

    cfg = Config()
    for key, value in gunicorn_options(_settings(tmp_path)).items():
        cfg.set(key, value)
    assert callable(cfg.post_worker_init)


def test_a_negative_threshold_stops_before_any_worker_starts(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="gc_young_threshold"):
        gunicorn_options(_settings(tmp_path, gc_young_threshold=-1))
