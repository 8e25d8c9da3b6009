"""Where the keyring lives: a 0600 file, an environment variable, later a KMS/HSM.

The application only sees the :class:`KeyringProvider` protocol, so a hardware
or cloud key manager can be added as one more provider without touching the
encryption code.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from casework.security.errors import KeyringError
from casework.security.keyring import Keyring
from casework.security.keyring_json import dump_keyring, parse_keyring

FILE_MODE = 0o600
_GROUP_OR_OTHER = stat.S_IRWXG | stat.S_IRWXO


class KeyringProvider(Protocol):
    """Loads and stores the keyring; implementations decide where and how."""

    def load(self) -> Keyring:
        """Return the stored keyring or raise KeyringError."""
        ...

    def save(self, keyring: Keyring) -> None:
        """Store the keyring, replacing the previous one, or raise KeyringError."""
        ...


class FileKeyringProvider:
    """A keyring in a JSON file that only its owner may read or write (mode 0600).

    Writes are atomic (temporary file in the same folder, fsync, rename), so a
    crash never leaves a half-written keyring behind.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FileKeyringProvider({str(self.path)!r})"

    def load(self) -> Keyring:
        """Parse the file; refuse it if group or others have any access to it."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise KeyringError(f"no keyring file at {self.path}") from None
        except OSError as error:
            raise KeyringError(f"cannot open keyring file {self.path}: {error.strerror}") from None
        try:
            self._check_safe(os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise
        with os.fdopen(fd, "rb") as handle:
            return parse_keyring(handle.read())

    def _check_safe(self, status: os.stat_result) -> None:
        if not stat.S_ISREG(status.st_mode):
            raise KeyringError(f"keyring path {self.path} is not a regular file")
        if status.st_mode & _GROUP_OR_OTHER:
            mode = stat.S_IMODE(status.st_mode)
            raise KeyringError(
                f"keyring file {self.path} is accessible by group or others (mode {mode:04o}); "
                f"restrict it with: chmod 600 {self.path}"
            )

    def save(self, keyring: Keyring) -> None:
        """Atomically replace the file with ``keyring``, mode 0600."""
        temporary = self._write_temporary(keyring)
        try:
            os.replace(temporary, self.path)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise KeyringError(f"cannot write keyring file {self.path}: {error.strerror}") from None
        self._sync_folder()

    def create(self, keyring: Keyring) -> None:
        """Store ``keyring`` only if no file exists yet, so a new ring never overwrites keys.

        Raises KeyringError if the file already exists.
        """
        temporary = self._write_temporary(keyring)
        try:
            os.link(temporary, self.path)
        except FileExistsError:
            raise KeyringError(f"a keyring file already exists at {self.path}") from None
        except OSError as error:
            raise KeyringError(f"cannot write keyring file {self.path}: {error.strerror}") from None
        finally:
            temporary.unlink(missing_ok=True)
        self._sync_folder()

    def _write_temporary(self, keyring: Keyring) -> Path:
        folder = self.path.parent
        try:
            fd, name = tempfile.mkstemp(prefix=".keyring-", suffix=".tmp", dir=folder)
        except OSError as error:
            message = f"cannot write in keyring folder {folder}: {error.strerror}"
            raise KeyringError(message) from None
        temporary = Path(name)
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "wb") as handle:
                handle.write(dump_keyring(keyring).encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return temporary

    def _sync_folder(self) -> None:
        """Persist the rename itself; best effort where folders cannot be fsynced."""
        with contextlib.suppress(OSError):
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


class EnvKeyringProvider:
    """A read-only keyring taken from an environment variable holding the JSON document.

    Suits containers whose secret store injects environment variables; rotating
    keys then happens in that secret store, so :meth:`save` refuses.
    """

    def __init__(self, variable_name: str, environ: Mapping[str, str] | None = None) -> None:
        self.variable_name = variable_name
        self._environ = os.environ if environ is None else environ

    def __repr__(self) -> str:
        return f"EnvKeyringProvider({self.variable_name!r})"

    def load(self) -> Keyring:
        """Parse the variable's value; raise KeyringError if it is unset or invalid."""
        text = self._environ.get(self.variable_name)
        if not text:
            raise KeyringError(f"environment variable {self.variable_name} is not set")
        return parse_keyring(text)

    def save(self, keyring: Keyring) -> None:
        """Always raise: an environment variable cannot be written back."""
        raise KeyringError(
            f"the keyring from environment variable {self.variable_name} is read-only: "
            "store the new keyring in your secret manager instead"
        )
