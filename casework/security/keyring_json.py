"""The keyring's JSON document: versioned, base64 key material, parsed strictly.

A keyring file is edited rarely and by hand at worst, and a mistake in it can
destroy data. Parsing therefore rejects anything unexpected (unknown or
duplicate fields, wrong types, wrong key lengths, two active KEKs) instead of
guessing. Error messages name the offending field, never its value.

Document, version 1::

    {"format": "casework.keyring", "version": 1,
     "keks": [{"id": "1f2e3d4c", "state": "active",
               "created_at": "2025-01-31T09:00:00+00:00", "material": "<base64, 32 bytes>"}],
     "blind_index_roots": [{"version": 1, "created_at": "...", "material": "<base64, 32 bytes>"}],
     "signing_key": {"algorithm": "ed25519", "material": "<base64, 32-byte raw private key>"}}

A destroyed KEK keeps its entry (its id stays reserved) with ``"material": null``.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from casework.security.errors import KeyringError
from casework.security.keyring import BlindIndexRoot, Kek, Keyring, KeyState

FORMAT_NAME = "casework.keyring"
FORMAT_VERSION = 1

_TOP_FIELDS = frozenset({"format", "version", "keks", "blind_index_roots", "signing_key"})
_KEK_FIELDS = frozenset({"id", "state", "created_at", "material"})
_ROOT_FIELDS = frozenset({"version", "created_at", "material"})
_SIGNING_FIELDS = frozenset({"algorithm", "material"})


def dump_keyring(keyring: Keyring) -> str:
    """Return the keyring as a JSON document (contains every secret: store it like one)."""
    document = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "keks": [_dump_kek(kek) for kek in keyring.keks],
        "blind_index_roots": [_dump_root(root) for root in keyring.blind_index_roots],
        "signing_key": {
            "algorithm": "ed25519",
            "material": _b64(keyring.signing_key.private_bytes_raw()),
        },
    }
    return json.dumps(document, indent=2) + "\n"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _dump_kek(kek: Kek) -> dict[str, Any]:
    return {
        "id": kek.kek_id,
        "state": kek.state.value,
        "created_at": kek.created_at.isoformat(),
        "material": None if kek.material is None else _b64(kek.material),
    }


def _dump_root(root: BlindIndexRoot) -> dict[str, Any]:
    return {
        "version": root.version,
        "created_at": root.created_at.isoformat(),
        "material": _b64(root.material),
    }


def parse_keyring(text: str | bytes) -> Keyring:
    """Return the Keyring described by a JSON document; raise KeyringError on any defect."""
    document = _load_json(text)
    _check_fields(document, _TOP_FIELDS, "keyring")
    if document["format"] != FORMAT_NAME:
        raise KeyringError(f"not a casework keyring: 'format' must be {FORMAT_NAME!r}")
    if _integer(document["version"], "version") != FORMAT_VERSION:
        raise KeyringError(f"unsupported keyring version: this release reads {FORMAT_VERSION}")
    keks = [_parse_kek(item, i) for i, item in enumerate(_array(document["keks"], "keks"))]
    roots = _array(document["blind_index_roots"], "blind_index_roots")
    return Keyring(
        keks,
        [_parse_root(item, i) for i, item in enumerate(roots)],
        _parse_signing_key(document["signing_key"]),
    )


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise KeyringError(f"keyring field {key!r} appears twice")
        result[key] = value
    return result


def _load_json(text: str | bytes) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates)
    except (ValueError, UnicodeDecodeError):
        # The parser's message can quote the document, so it is not passed on.
        raise KeyringError("the keyring is not valid JSON") from None


def _check_fields(value: Any, expected: frozenset[str], where: str) -> None:
    if not isinstance(value, dict):
        raise KeyringError(f"{where} must be a JSON object")
    missing = sorted(expected - value.keys())
    unknown = sorted(value.keys() - expected)
    if missing:
        raise KeyringError(f"{where} lacks field(s): {', '.join(missing)}")
    if unknown:
        raise KeyringError(f"{where} has unknown field(s): {', '.join(unknown)}")


def _array(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise KeyringError(f"{where} must be a JSON array")
    return value


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise KeyringError(f"{where} must be an integer")
    return value


def _timestamp(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise KeyringError(f"{where} must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise KeyringError(f"{where} must be an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise KeyringError(f"{where} must include a UTC offset")
    return parsed


def _key_material(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise KeyringError(f"{where} must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"{where} is not valid base64") from None
    if len(raw) != 32:
        raise KeyringError(f"{where} must decode to exactly 32 bytes")
    return raw


def _parse_kek(item: Any, index: int) -> Kek:
    where = f"keks[{index}]"
    _check_fields(item, _KEK_FIELDS, where)
    try:
        state = KeyState(item["state"])
    except ValueError:
        allowed = ", ".join(s.value for s in KeyState)
        raise KeyringError(f"{where}.state must be one of: {allowed}") from None
    material = item["material"]
    raw = None if material is None else _key_material(material, f"{where}.material")
    return Kek(item["id"], state, _timestamp(item["created_at"], f"{where}.created_at"), raw)


def _parse_root(item: Any, index: int) -> BlindIndexRoot:
    where = f"blind_index_roots[{index}]"
    _check_fields(item, _ROOT_FIELDS, where)
    return BlindIndexRoot(
        _integer(item["version"], f"{where}.version"),
        _timestamp(item["created_at"], f"{where}.created_at"),
        _key_material(item["material"], f"{where}.material"),
    )


def _parse_signing_key(item: Any) -> Ed25519PrivateKey:
    _check_fields(item, _SIGNING_FIELDS, "signing_key")
    if item["algorithm"] != "ed25519":
        raise KeyringError("signing_key.algorithm must be 'ed25519'")
    raw = _key_material(item["material"], "signing_key.material")
    return Ed25519PrivateKey.from_private_bytes(raw)
