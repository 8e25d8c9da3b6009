"""The keyring: every long-lived secret of an installation, kept off the database.

It holds the key-encryption keys (KEKs) that wrap each case's data key, the
blind-index root keys, and the Ed25519 key that signs access-log checkpoints.
A stolen database or backup is useless without it; losing it loses the data.
Persisting it is the job of :mod:`casework.security.keyring_providers`; its
JSON form lives in :mod:`casework.security.keyring_json`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from casework.security.errors import KeyringError, UnknownKeyError

KEY_BYTES = 32
"""Every symmetric key here is 256 bits."""

KEK_ID_HEX_DIGITS = 8
"""A KEK id is 8 random lowercase hex digits: short enough to read aloud, unique within a ring."""


class KeyState(StrEnum):
    """Life cycle of a KEK: new data keys are wrapped under the active one only."""

    ACTIVE = "active"
    DECRYPT_ONLY = "decrypt_only"
    DESTROYED = "destroyed"


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime, whole seconds."""
    return datetime.now(UTC).replace(microsecond=0)


def _check_key_bytes(material: bytes) -> None:
    if not isinstance(material, bytes) or len(material) != KEY_BYTES:
        raise KeyringError(f"key material must be exactly {KEY_BYTES} bytes")


@dataclass(frozen=True, repr=False)
class Kek:
    """A key-encryption key; ``material`` is None once the key is destroyed."""

    kek_id: str
    state: KeyState
    created_at: datetime
    material: bytes | None

    def __post_init__(self) -> None:
        if not is_kek_id(self.kek_id):
            raise KeyringError("a KEK id must be 8 lowercase hex digits")
        if self.created_at.tzinfo is None:
            raise KeyringError("a KEK creation time must be timezone-aware")
        if self.state is KeyState.DESTROYED:
            if self.material is not None:
                raise KeyringError("a destroyed KEK must not carry key material")
        elif self.material is None:
            raise KeyringError("a KEK that is not destroyed needs key material")
        else:
            _check_key_bytes(self.material)

    def __repr__(self) -> str:
        created = self.created_at.isoformat()
        return f"Kek(kek_id={self.kek_id!r}, state={self.state.value!r}, created_at={created!r})"

    @classmethod
    def generate(cls, existing_ids: Iterable[str] = ()) -> Kek:
        """Return a new active KEK whose id differs from ``existing_ids``."""
        taken = set(existing_ids)
        kek_id = secrets.token_hex(KEK_ID_HEX_DIGITS // 2)
        while kek_id in taken:
            kek_id = secrets.token_hex(KEK_ID_HEX_DIGITS // 2)
        return cls(kek_id, KeyState.ACTIVE, utc_now(), secrets.token_bytes(KEY_BYTES))

    def key_bytes(self) -> bytes:
        """Return the material, or raise UnknownKeyError if the KEK was destroyed."""
        if self.material is None:
            raise UnknownKeyError(f"KEK {self.kek_id} was destroyed")
        return self.material


def is_kek_id(value: object) -> bool:
    """Return whether ``value`` has the shape of a KEK id."""
    return (
        isinstance(value, str)
        and len(value) == KEK_ID_HEX_DIGITS
        and all(c in "0123456789abcdef" for c in value)
    )


@dataclass(frozen=True, repr=False)
class BlindIndexRoot:
    """A root key from which per-field blind-index keys are derived.

    The version goes into every derivation, so rotating the root (a new
    version) changes every index value and old values can be recomputed lazily.
    """

    version: int
    created_at: datetime
    material: bytes

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int):
            raise KeyringError("a blind-index root version must be an integer")
        if not 1 <= self.version < 2**32:
            raise KeyringError("a blind-index root version must be between 1 and 2**32 - 1")
        if self.created_at.tzinfo is None:
            raise KeyringError("a blind-index root creation time must be timezone-aware")
        _check_key_bytes(self.material)

    def __repr__(self) -> str:
        return f"BlindIndexRoot(version={self.version}, created_at={self.created_at.isoformat()!r})"


class Keyring:
    """KEKs (exactly one active), blind-index roots (newest is current) and the signing key.

    Operations that change the ring mutate it in place; persist it afterwards
    with a provider. Construction validates the invariants, so a Keyring in
    memory is always usable.
    """

    def __init__(
        self,
        keks: Iterable[Kek],
        blind_index_roots: Iterable[BlindIndexRoot],
        signing_key: Ed25519PrivateKey,
    ) -> None:
        self._keks: dict[str, Kek] = {}
        for kek in keks:
            if kek.kek_id in self._keks:
                raise KeyringError(f"duplicate KEK id {kek.kek_id}")
            self._keks[kek.kek_id] = kek
        self._roots: dict[int, BlindIndexRoot] = {}
        for root in blind_index_roots:
            if root.version in self._roots:
                raise KeyringError(f"duplicate blind-index root version {root.version}")
            self._roots[root.version] = root
        if not isinstance(signing_key, Ed25519PrivateKey):
            raise KeyringError("the signing key must be an Ed25519 private key")
        self._signing_key = signing_key
        self._check_invariants()

    def _check_invariants(self) -> None:
        active = [k for k in self._keks.values() if k.state is KeyState.ACTIVE]
        if len(active) != 1:
            raise KeyringError(f"a keyring needs exactly one active KEK, found {len(active)}")
        if not self._roots:
            raise KeyringError("a keyring needs a blind-index root key")

    @classmethod
    def generate(cls) -> Keyring:
        """Return a fresh keyring: one active KEK, blind-index root version 1, a signing key."""
        root = BlindIndexRoot(1, utc_now(), secrets.token_bytes(KEY_BYTES))
        return cls([Kek.generate()], [root], Ed25519PrivateKey.generate())

    def __repr__(self) -> str:
        return (
            f"Keyring(active_kek={self.active_kek().kek_id!r}, keks={len(self._keks)}, "
            f"blind_index_root_version={self.blind_index_root().version})"
        )

    @property
    def keks(self) -> tuple[Kek, ...]:
        """All KEKs in the order they were added, destroyed ones included (ids stay reserved)."""
        return tuple(self._keks.values())

    def active_kek(self) -> Kek:
        """Return the one KEK under which new data keys are wrapped."""
        return next(k for k in self._keks.values() if k.state is KeyState.ACTIVE)

    def kek(self, kek_id: str) -> Kek:
        """Return a usable KEK by id; raise UnknownKeyError if unknown or destroyed."""
        kek = self._keks.get(kek_id)
        if kek is None:
            raise UnknownKeyError("no KEK with this id in the keyring")
        if kek.state is KeyState.DESTROYED:
            raise UnknownKeyError(f"KEK {kek_id} was destroyed")
        return kek

    def rotate(self) -> Kek:
        """Make a new KEK active and demote the current one to decrypt-only; return the new one.

        Data keys wrapped under the old KEK stay readable until they are
        re-wrapped (:func:`casework.keys.rotation.rewrap_batch`).
        """
        old = self.active_kek()
        new = Kek.generate(existing_ids=self._keks)
        self._keks[old.kek_id] = replace(old, state=KeyState.DECRYPT_ONLY)
        self._keks[new.kek_id] = new
        return new

    def retire(self, kek_id: str) -> None:
        """Destroy a decrypt-only KEK's material for good.

        Every data key still wrapped under it becomes unreadable: check first
        that none is left (:func:`casework.keys.rotation.retire_kek`).
        Raises UnknownKeyError for an unknown or already destroyed KEK and
        KeyringError for the active one (rotate first).
        """
        kek = self.kek(kek_id)
        if kek.state is KeyState.ACTIVE:
            raise KeyringError("the active KEK cannot be retired: rotate first")
        self._keks[kek_id] = replace(kek, state=KeyState.DESTROYED, material=None)

    @property
    def blind_index_roots(self) -> tuple[BlindIndexRoot, ...]:
        """All blind-index roots, oldest version first."""
        return tuple(self._roots[v] for v in sorted(self._roots))

    def blind_index_root(self, version: int | None = None) -> BlindIndexRoot:
        """Return the root of ``version``, or the current (newest) one when version is None."""
        if version is None:
            return self._roots[max(self._roots)]
        root = self._roots.get(version)
        if root is None:
            raise UnknownKeyError(f"no blind-index root version {version}")
        return root

    def new_blind_index_root(self) -> BlindIndexRoot:
        """Add and return a new current blind-index root; older versions stay until dropped."""
        version = max(self._roots) + 1
        root = BlindIndexRoot(version, utc_now(), secrets.token_bytes(KEY_BYTES))
        self._roots[version] = root
        return root

    def drop_blind_index_root(self, version: int) -> None:
        """Remove an old root once every index has been recomputed under a newer one."""
        if version == self.blind_index_root().version:
            raise KeyringError("the current blind-index root cannot be dropped")
        if version not in self._roots:
            raise UnknownKeyError(f"no blind-index root version {version}")
        del self._roots[version]

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        """The Ed25519 key that signs access-log checkpoints."""
        return self._signing_key

    @property
    def verify_key(self) -> Ed25519PublicKey:
        """The public half of :attr:`signing_key`, to publish for verifiers."""
        return self._signing_key.public_key()
