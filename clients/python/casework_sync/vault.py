"""The device's secrets, sealed under a key only the caseworker's passphrase unlocks.

``keys.json`` holds the scrypt parameters and salt in the clear and one
AES-256-GCM blob with everything else: the Ed25519 private key, the random
key that seals the replica, the device id, the server, and (after sign-in)
the device-bound token. Nothing in the file says who the device works for.
scrypt (from ``cryptography``) rather than argon2id keeps the client's
dependencies to what a field laptop already needs.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

KEY_FILE = "keys.json"
FORMAT = 1
NONCE_BYTES = 12
_AAD = b"casework-sync keys v1"


class VaultError(Exception):
    """The key file is missing, unreadable or from another format."""


class WrongPassphrase(VaultError):
    """The passphrase does not open the key file (nothing was changed)."""


@dataclass(frozen=True)
class KdfCost:
    """scrypt cost: n=2**17, r=8 takes about 128 MiB and a fraction of a second."""

    log2_n: int = 17
    r: int = 8
    p: int = 1


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM with a fresh random nonce, returned as nonce || ciphertext+tag."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Inverse of :func:`seal`; raises ``InvalidTag`` when key, data or AAD differ."""
    return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)


def _derive(passphrase: str, salt: bytes, cost: KdfCost) -> bytes:
    kdf = Scrypt(salt=salt, length=32, n=2**cost.log2_n, r=cost.r, p=cost.p)
    return kdf.derive(passphrase.encode("utf-8"))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def staged_path(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def stage(path: Path, data: bytes) -> Path:
    """Write ``data`` beside ``path``, fsynced; nothing reads it until :func:`install`."""
    temporary = staged_path(path)
    with open(temporary, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return temporary


def install(temporary: Path, path: Path) -> None:
    """Rename the staged file over ``path`` and fsync the folder: one atomic step."""
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_atomically(path: Path, data: bytes) -> None:
    """Write then rename, fsynced, so a crash leaves the old file or the new one."""
    install(stage(path, data), path)


class Vault:
    """The unlocked secrets of one device folder; ``save()`` reseals them."""

    def __init__(self, path: Path, kek: bytes, salt: bytes, cost: KdfCost, data: dict[str, Any]):
        self.path = path
        self._kek = kek
        self._salt = salt
        self._cost = cost
        self.data = data

    @classmethod
    def create(
        cls, home: Path, passphrase: str, data: dict[str, Any], cost: KdfCost | None = None
    ) -> Vault:
        if not passphrase:
            raise VaultError("The passphrase must not be empty.")
        cost = cost or KdfCost()
        salt = secrets.token_bytes(16)
        vault = cls(home / KEY_FILE, _derive(passphrase, salt, cost), salt, cost, dict(data))
        vault.save()
        return vault

    @classmethod
    def unlock(cls, home: Path, passphrase: str) -> Vault:
        """Open ``keys.json``; :class:`WrongPassphrase` leaves everything as it was."""
        path = home / KEY_FILE
        try:
            document = json.loads(path.read_bytes())
            kdf = document["kdf"]
            cost = KdfCost(int(kdf["log2_n"]), int(kdf["r"]), int(kdf["p"]))
            salt = base64.b64decode(kdf["salt"])
            sealed = base64.b64decode(document["sealed"])
        except FileNotFoundError:
            raise VaultError("This device is not enrolled (no key file).") from None
        except (ValueError, KeyError, TypeError):
            raise VaultError("The key file is damaged or of another format.") from None
        if document.get("format") != FORMAT or kdf.get("name") != "scrypt":
            raise VaultError("The key file is of another format.")
        kek = _derive(passphrase, salt, cost)
        try:
            plaintext = open_sealed(kek, sealed, _AAD)
        except InvalidTag:
            raise WrongPassphrase("Wrong passphrase.") from None
        # A key file staged by a passphrase change that never got renamed into place:
        # the change did not happen, this (old) file is the one that counts.
        shred(staged_path(path))
        return cls(path, kek, salt, cost, json.loads(plaintext))

    def _document(self, kek: bytes, salt: bytes, cost: KdfCost) -> bytes:
        document = {
            "format": FORMAT,
            "kdf": {
                "name": "scrypt",
                "salt": _b64(salt),
                "log2_n": cost.log2_n,
                "r": cost.r,
                "p": cost.p,
            },
            "sealed": _b64(seal(kek, json.dumps(self.data).encode("utf-8"), _AAD)),
        }
        return json.dumps(document).encode("ascii")

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomically(self.path, self._document(self._kek, self._salt, self._cost))

    def stage_passphrase(
        self, passphrase: str, cost: KdfCost | None = None
    ) -> tuple[Path, bytes, bytes, KdfCost]:
        """First half of :meth:`change_passphrase`: the new key file, written but not in place."""
        if not passphrase:
            raise VaultError("The passphrase must not be empty.")
        cost = cost or self._cost
        salt = secrets.token_bytes(16)
        kek = _derive(passphrase, salt, cost)
        return stage(self.path, self._document(kek, salt, cost)), kek, salt, cost

    def change_passphrase(self, passphrase: str, cost: KdfCost | None = None) -> None:
        """Re-seal everything (device key, replica key, token) under a new passphrase.

        The new key file is written and fsynced beside the old one, then
        renamed over it: a crash at any point leaves a file that the old
        passphrase opens, or one that the new one opens, never neither. The
        replica key itself does not change, so the replica is not rewritten.
        """
        staged, kek, salt, cost = self.stage_passphrase(passphrase, cost)
        install(staged, self.path)
        self._kek, self._salt, self._cost = kek, salt, cost


def shred(path: Path) -> None:
    """Overwrite a file with random bytes, fsync, then remove it (best effort on SSDs)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    with open(path, "r+b") as handle:
        handle.write(secrets.token_bytes(size))
        handle.flush()
        os.fsync(handle.fileno())
    path.unlink()
