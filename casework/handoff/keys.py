"""The deployment's keys for partner exchange, derived from the keyring, never stored.

* Signing: the keyring's Ed25519 key, the one that signs access-log
  checkpoints. ``partner_package`` signs under its own domain (with a NUL
  byte no checkpoint note can hold), so one signature never passes for the
  other, and partners pin the same public key auditors already know.
* Receiving: an X25519 key pair derived with HKDF from each blind-index root
  (:func:`casework.security.app.derived_secret`). The newest root's key is the
  one to publish; older roots still in the keyring still open packages sealed
  to their key, so a root rotation does not strand packages in transit.
  Partners must register the new public key after a root rotation
  (``casework handoff public-key`` prints it).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from casework.handoff.partner_package import key_fingerprint
from casework.security.app import derived_secret
from casework.security.keyring import Keyring

RECEIVING_PURPOSE = "handoff/x25519-receiving"


def _raw(key: X25519PublicKey | Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def signing_key(keyring: Keyring) -> Ed25519PrivateKey:
    """The key that signs packages we send."""
    return keyring.signing_key


def receiving_keys(keyring: Keyring) -> list[X25519PrivateKey]:
    """The X25519 private keys packages to us may be sealed to, newest first."""
    roots = sorted(keyring.blind_index_roots, key=lambda r: r.version, reverse=True)
    return [_receiving_key(keyring, root.version) for root in roots]


def _receiving_key(keyring: Keyring, version: int) -> X25519PrivateKey:
    # derived_secret reads the current root; a view of the ring pinned to
    # ``version`` gives the same derivation for older roots.
    return X25519PrivateKey.from_private_bytes(
        derived_secret(RECEIVING_PURPOSE, _PinnedRoot(keyring, version))  # type: ignore[arg-type]
    )


class _PinnedRoot:
    """A keyring whose ``blind_index_root()`` is one given version (for derivation only)."""

    def __init__(self, keyring: Keyring, version: int) -> None:
        self._keyring = keyring
        self._version = version

    def blind_index_root(self, version: int | None = None) -> object:
        return self._keyring.blind_index_root(self._version if version is None else version)


def receiving_key_for(keyring: Keyring, recipient: bytes) -> X25519PrivateKey | None:
    """The private key whose public half is ``recipient`` (a package's header), or None."""
    for key in receiving_keys(keyring):
        if _raw(key.public_key()) == recipient:
            return key
    return None


@dataclass(frozen=True)
class PublicKeys:
    """What a partner registers for this deployment: keys in base64 and fingerprints."""

    x25519: str
    x25519_fingerprint: str
    ed25519: str
    ed25519_fingerprint: str


def public_keys(keyring: Keyring) -> PublicKeys:
    """The current receiving key and the signing key, for a partner to register."""
    receiving = receiving_keys(keyring)[0].public_key()
    verify = keyring.verify_key
    return PublicKeys(
        b64(_raw(receiving)),
        key_fingerprint(receiving),
        b64(_raw(verify)),
        key_fingerprint(verify),
    )
