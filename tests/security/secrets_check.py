"""Shared assertion: no representation of a secret appears in a text."""

import base64

from casework.security.keyring import Keyring


def secret_forms(keyring: Keyring) -> list[str]:
    """Return hex and base64 renderings of every secret in the keyring."""
    raws = [kek.material for kek in keyring.keks if kek.material is not None]
    raws += [root.material for root in keyring.blind_index_roots]
    raws.append(keyring.signing_key.private_bytes_raw())
    forms: list[str] = []
    for raw in raws:
        forms += [raw.hex(), base64.b64encode(raw).decode(), repr(raw)[2:-1]]
    return forms


def assert_no_secret(text: str, keyring: Keyring) -> None:
    for form in secret_forms(keyring):
        assert form not in text
