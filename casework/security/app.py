"""The keyring inside the running service.

The keyring comes from ``CASEWORK_KEYRING`` (the JSON document, for containers)
or from a 0600 file (default ``<instance>/keyring.json``, created by
``casework init``). An unsafe file stops start-up. Each process re-reads the
file when it changes, so a ``casework keys rotate`` run beside live workers is
picked up within a second: no worker keeps wrapping under a demoted KEK.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask, Response, current_app
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from casework.db import database_url
from casework.errors import ServiceUnavailable, problem, register_problem
from casework.security.case_keys import attach_keyring
from casework.security.columns import install_session_events
from casework.security.errors import KeyringError, RowIntegrityError
from casework.security.keyring import Keyring
from casework.security.keyring_providers import (
    EnvKeyringProvider,
    FileKeyringProvider,
    KeyringProvider,
)

KEYRING_ENV = "CASEWORK_KEYRING"
_RECHECK_SECONDS = 1.0
log = logging.getLogger("casework.security")


class KeyringHolder:
    """Loads the keyring once and reloads it when its file changes."""

    def __init__(self, provider: KeyringProvider) -> None:
        self.provider = provider
        self._lock = threading.Lock()
        self._keyring: Keyring | None = None
        self._stamp: tuple[int, int] | None = None
        self._checked_at = 0.0

    def get(self) -> Keyring:
        """The current keyring; :class:`KeyringError` when there is none."""
        now = time.monotonic()
        if self._keyring is None or now - self._checked_at > _RECHECK_SECONDS:
            with self._lock:
                self._refresh(now)
        assert self._keyring is not None
        return self._keyring

    def exists(self) -> bool:
        if isinstance(self.provider, FileKeyringProvider):
            return self.provider.path.exists()
        return True

    def save(self, keyring: Keyring) -> None:
        self.provider.save(keyring)
        with self._lock:
            self._keyring, self._stamp = keyring, self._file_stamp()

    def create(self) -> Keyring:
        """Create and store a new keyring (file provider only); never overwrites."""
        if not isinstance(self.provider, FileKeyringProvider):
            raise KeyringError("only a keyring file can be created by casework init")
        keyring = Keyring.generate()
        self.provider.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.provider.create(keyring)
        with self._lock:
            self._keyring, self._stamp = keyring, self._file_stamp()
        return keyring

    def _refresh(self, now: float) -> None:
        stamp = self._file_stamp()
        if self._keyring is None or stamp != self._stamp:
            self._keyring = self.provider.load()
            self._stamp = stamp
        self._checked_at = now

    def _file_stamp(self) -> tuple[int, int] | None:
        if not isinstance(self.provider, FileKeyringProvider):
            return None
        try:
            status = self.provider.path.stat()
        except FileNotFoundError:
            return None
        return (status.st_mtime_ns, status.st_ino)


def provider_for(app: Flask) -> KeyringProvider:
    if os.environ.get(KEYRING_ENV):
        return EnvKeyringProvider(KEYRING_ENV)
    configured = app.config["CASEWORK"]["keyring_path"]
    return FileKeyringProvider(Path(configured or Path(app.instance_path) / "keyring.json"))


def init_app(app: Flask) -> None:
    """Attach the keyring; refuse to start on an unsafe or corrupt one. Installs the
    session listeners that seal and open encrypted attributes.

    A missing file is allowed so that ``casework init`` can create it; until
    then every use of a key answers 503.
    """
    install_session_events()
    holder = KeyringHolder(provider_for(app))
    if holder.exists():
        holder.get()  # raises KeyringError with a message saying how to fix it
    warn_if_beside_database(app, holder.provider)
    app.extensions["casework.keyring"] = holder
    app.register_error_handler(RowIntegrityError, _integrity_failed)
    app.extensions.setdefault("casework.session_hooks", []).append(_attach_to_session)
    app.extensions.setdefault("casework.init_steps", []).append(lambda: ensure_keyring(app))


def keyring_beside_database(app: Flask, provider: KeyringProvider) -> Path | None:
    """The SQLite database file when the keyring file sits in its folder, else None.

    A backup of that folder (or of the machine's disk) carries the keyring with
    the database: the keyring then opens every case in the backup, erased ones
    included, until it is shredded. PostgreSQL URLs and keyrings from the
    environment cannot be compared, so they give None.
    """
    if not isinstance(provider, FileKeyringProvider):
        return None
    url = make_url(database_url(app.config["CASEWORK"], Path(app.instance_path)))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    database = Path(url.database).resolve()
    return database if provider.path.resolve().parent == database.parent else None


def warn_if_beside_database(app: Flask, provider: KeyringProvider) -> None:
    """Log a start-up warning when the keyring file is in the SQLite database's folder."""
    database = keyring_beside_database(app, provider)
    if database is not None:
        log.warning(
            "the keyring file is in the database's folder %s: keep it out of database backups "
            "(or set keyring_path elsewhere); a keyring backup older than the last "
            "'casework keys shred' undoes erasures (docs/encryption.md)",
            database.parent,
            extra={"event": "keyring_beside_database"},
        )


INTEGRITY_FAILED = "integrity-failed"
register_problem(INTEGRITY_FAILED, "Stored data failed its integrity check")

INTEGRITY_HOOKS = "casework.integrity_hooks"
"""Callables ``(RowIntegrityError) -> None`` run when a read finds a row altered outside
casework; the access log registers one (it records the failure)."""


def _integrity_failed(exc: RowIntegrityError) -> Response:
    """A stored row failed its authenticator: 500 with a clear problem type, logged and
    recorded (by the hooks) without any value or id."""
    log.error(
        "a row failed its integrity check",
        extra={"event": "row_integrity_failed", "error_type": f"{exc.table}.{exc.column}"},
    )
    for hook in current_app.extensions.get(INTEGRITY_HOOKS, []):
        hook(exc)
    return problem(
        500,
        INTEGRITY_FAILED,
        "A record was altered outside casework and cannot be opened; an administrator must "
        "restore it from a backup. The failure is in the access log.",
    )


def _attach_to_session(session: Session) -> None:
    """Give each request's session the keyring, so encrypted attributes find their keys.

    Without a keyring (before ``casework init``) the session stays bare and any
    encrypted attribute refuses to work, while health checks still answer.
    """
    try:
        keyring = holder().get()
    except KeyringError:
        return
    attach_keyring(session, keyring)


def ensure_keyring(app: Flask) -> bool:
    """``casework init`` step: create the keyring file if there is none. True if created."""
    holder: KeyringHolder = app.extensions["casework.keyring"]
    if holder.exists():
        return False
    holder.create()
    return True


def holder(app: Flask | None = None) -> KeyringHolder:
    found: KeyringHolder = (app or current_app).extensions["casework.keyring"]
    return found


def current_keyring() -> Keyring:
    """The keyring of the running service; 503 when it has not been created."""
    try:
        return holder().get()
    except KeyringError:
        raise ServiceUnavailable("The keyring is not available; run casework init.") from None


def derived_secret(purpose: str, keyring: Keyring | None = None) -> bytes:
    """A 32-byte secret for ``purpose`` (e.g. ``auth/throttle``), derived with HKDF
    from the current blind-index root: stable across restarts, never stored."""
    root = (keyring or current_keyring()).blind_index_root()
    info = b"casework/derived/" + purpose.encode() + b"/v" + str(root.version).encode()
    salt = hashlib.sha256(b"casework derived secrets").digest()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(root.material)
