"""Configuration: built-in schema -> ``config/<env>.toml`` -> ``CASEWORK_*`` environment.

Every key is declared here with its type. An unknown key or a value of the wrong
type stops start-up with a message naming the key, because a typo in a security
setting (say, ``mfa_requierd_roles``) must never silently fall back to a default.
"""

from __future__ import annotations

import gc
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_PREFIX = "CASEWORK_"
# Environment variables that are not configuration keys: they choose where
# configuration comes from, or feed one-off commands.
RESERVED_ENV = frozenset(
    {
        "CASEWORK_ENV",
        "CASEWORK_CONFIG_DIR",
        "CASEWORK_ADMIN_PASSWORD",
        "CASEWORK_KEYRING",
        "CASEWORK_TEST_DATABASE_URL",
        "CASEWORK_FUZZ_EXAMPLES",  # examples per operation in tests/test_fuzz.py
    }
)
DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


class ConfigError(Exception):
    """Raised when configuration is missing, unknown or of the wrong type."""


@dataclass(frozen=True)
class Key:
    """A declared configuration key: its type and a default used when no file sets it."""

    type: type
    default: Any
    doc: str


SCHEMA: dict[str, Key] = {
    "database_url": Key(str, "", "SQLAlchemy URL; empty means SQLite in the instance folder."),
    "instance_path": Key(str, "instance", "Folder for the SQLite file and the keyring."),
    "host": Key(str, "127.0.0.1", "Address `casework serve` binds to."),
    "port": Key(int, 8000, "Port `casework serve` binds to."),
    "workers": Key(int, 2, "gunicorn worker processes for `casework serve`."),
    "threads": Key(int, 8, "Threads per gunicorn worker (gthread); see docs/performance.md."),
    "database_pool_size": Key(
        int,
        0,
        "Server connections a worker keeps open (PostgreSQL); 0: threads + 2, one per request "
        "thread, the access log's batch writer and a spare.",
    ),
    "gc_young_threshold": Key(
        int,
        50_000,
        "A serving worker's garbage-collector gen-0 threshold, set after it froze the built "
        "app (gc.freeze); 0 keeps CPython's defaults. See docs/performance.md.",
    ),
    "trusted_proxies": Key(
        int,
        0,
        "Reverse-proxy hops in front of the app whose X-Forwarded-For, -Proto and -Host are "
        "trusted (werkzeug ProxyFix); 0 trusts none. See docs/deployment.md.",
    ),
    "control_socket": Key(
        str,
        "",
        "gunicorn control socket: a file name in the instance folder (empty:"
        ' gunicorn.ctl) or an absolute path; "off" disables it.',
    ),
    "max_body_bytes": Key(int, 1024 * 1024, "Largest request body accepted (413 above)."),
    "log_level": Key(str, "INFO", "Python logging level of the JSON logs."),
    "sqlite_busy_timeout_ms": Key(int, 10000, "How long SQLite waits for the write lock."),
    "api_max_page_size": Key(int, 200, "Hard maximum of `limit` on list endpoints."),
    "api_default_page_size": Key(int, 50, "`limit` when a list request gives none."),
    "keyring_path": Key(str, "", "Keyring file; empty means keyring.json in the instance folder."),
    "audit_key_path": Key(
        str, "", "Audit signing key file; empty: audit-signing-key.json in the instance folder."
    ),
    "token_idle_minutes": Key(int, 30, "A staff token expires after this much inactivity."),
    "token_absolute_hours": Key(int, 12, "A staff token expires this long after login."),
    "mfa_enrolment_minutes": Key(
        int, 15, "A token good only for MFA enrolment expires this long after it became so."
    ),
    "sync_tombstone_retention_days": Key(
        int, 180, "Sync: erased/evicted feed entries kept this long; older cursors resync."
    ),
    "mfa_required_roles": Key(
        list,
        [],
        "Roles that must use TOTP besides the defaults (every role that reads case data, "
        "admin, auditor), which configuration cannot remove.",
    ),
    "login_max_failures": Key(int, 5, "Failed logins allowed before back-off starts."),
    "login_failure_window_minutes": Key(int, 15, "Window in which failed logins are counted."),
    "password_hash_memory_kib": Key(int, 65536, "argon2id memory cost."),
    "password_hash_time_cost": Key(int, 3, "argon2id iterations."),
    "audit_origin": Key(str, "casework.local/audit", "Origin line of signed audit checkpoints."),
    "audit_checkpoint_every": Key(int, 1000, "Sign a checkpoint after this many entries."),
    "audit_checkpoint_minutes": Key(int, 60, "Sign a checkpoint at least this often (minutes)."),
    "reports_min_cell": Key(
        int, 5, "k: a published count below this is suppressed (docs/reports.md)."
    ),
    "reports_rounding": Key(
        int, 0, "Round every published count to a multiple of this; 0 publishes exact counts."
    ),
    "reports_workers": Key(int, 2, "Processes that decrypt a large report's rows (one per core)."),
    "retention_first_proposal": Key(
        list,
        [],
        "First retention-policy proposal, 'state=days' items (closed, handed_off, arrived); "
        "two administrators must still adopt and approve it.",
    ),
    "shred_after_hours": Key(
        int,
        12,
        "`casework keys shred --if-due` shreds once the oldest pending erasure is this old "
        "(run it hourly: erasures become final within this plus one hour; see docs/encryption.md).",
    ),
    "erasure_request_days": Key(int, 14, "A pending erasure request expires after this many days."),
    "audit_checkpoint_seconds": Key(
        int, 10, "While entries arrive, sign a checkpoint at least this often (seconds)."
    ),
    "audit_batch_size": Key(int, 512, "Most access-log entries written by one group commit."),
    "audit_batch_max_wait_ms": Key(
        int,
        2,
        "How long a group commit waits for the requests it expects back (ms); 0: never. "
        "Bigger batches take the log's lock and fsync less often (docs/audit.md).",
    ),
    "cases_filter_scan_limit": Key(
        int, 2000, "Cases a list filtered on an encrypted attribute decrypts per request."
    ),
}


def tune_gc(young_threshold: int) -> bool:
    """Freeze the objects alive now and collect young objects less often; False if 0.

    Call it once the app is built, in a serving process. The app's long-lived objects
    (models, mappers, compiled statement caches) go to the permanent generation, which no
    collection walks again, and forked workers keep sharing their pages. A request allocates
    thousands of containers, so at CPython's gen-0 threshold (700) collections ran many times
    per request; request-scoped cycles are still collected, only less often (a worker's
    memory stays bounded: docs/performance.md).
    """
    if young_threshold < 0:
        raise ConfigError("gc_young_threshold must be 0 or more")
    if young_threshold == 0:
        return False
    gc.collect()  # start-up garbage is freed, not frozen for the process's life
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
    return True


def load(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return the validated configuration as a dict keyed by lower-case names.

    Precedence, lowest first: schema defaults, ``config/default.toml``,
    ``config/<CASEWORK_ENV>.toml``, ``CASEWORK_<KEY>`` variables, then ``overrides``
    (used by tests and tools). Raises :class:`ConfigError` naming the bad key.
    """
    env = os.environ if environ is None else environ
    config_dir = Path(env.get("CASEWORK_CONFIG_DIR", DEFAULT_CONFIG_DIR))
    values: dict[str, Any] = {name: key.default for name, key in SCHEMA.items()}
    values.update(_read_toml(config_dir / "default.toml"))
    env_name = env.get("CASEWORK_ENV", "")
    if env_name and env_name != "default":
        path = config_dir / f"{env_name}.toml"
        if not path.is_file():
            raise ConfigError(f"CASEWORK_ENV={env_name!r}: no configuration file {path}")
        values.update(_read_toml(path))
    values.update(_read_environ(env))
    for name, value in (overrides or {}).items():
        values[name] = _checked(name, value, f"override {name}")
    return values


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return {name: _checked(name, value, f"{path.name}: {name}") for name, value in data.items()}


def _read_environ(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX) or var in RESERVED_ENV:
            continue
        name = var[len(ENV_PREFIX) :].lower()
        if name not in SCHEMA:
            raise ConfigError(f"unknown configuration variable {var}")
        values[name] = _checked(name, _parse_env(SCHEMA[name].type, raw, var), var)
    return values


def _parse_env(kind: type, raw: str, var: str) -> Any:
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{var} must be an integer") from None
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{var} must be true or false")
    if kind is list:
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def _checked(name: str, value: Any, where: str) -> Any:
    key = SCHEMA.get(name)
    if key is None:
        raise ConfigError(f"unknown configuration key {where!r}")
    ok = isinstance(value, key.type) and not (key.type is int and isinstance(value, bool))
    if key.type is list and ok:
        ok = all(isinstance(item, str) for item in value)
    if not ok:
        raise ConfigError(f"configuration key {where!r} must be of type {key.type.__name__}")
    return value
