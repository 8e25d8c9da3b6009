import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from casework.security.errors import KeyringError
from casework.security.keyring import Keyring, KeyState
from casework.security.keyring_json import dump_keyring, parse_keyring

from .secrets_check import assert_no_secret


@pytest.fixture
def keyring() -> Keyring:
    ring = Keyring.generate()
    old = ring.active_kek().kek_id
    ring.rotate()
    ring.rotate()
    ring.retire(old)
    ring.new_blind_index_root()
    return ring


def test_round_trip_keeps_every_key_and_state(keyring: Keyring) -> None:
    parsed = parse_keyring(dump_keyring(keyring))
    assert parsed.keks == keyring.keks
    assert parsed.blind_index_roots == keyring.blind_index_roots
    assert parsed.active_kek() == keyring.active_kek()
    raw = keyring.signing_key.private_bytes_raw()
    assert parsed.signing_key.private_bytes_raw() == raw


def test_document_is_versioned_and_destroyed_keks_keep_their_id(keyring: Keyring) -> None:
    document = json.loads(dump_keyring(keyring))
    assert (document["format"], document["version"]) == ("casework.keyring", 1)
    destroyed = [k for k in document["keks"] if k["state"] == KeyState.DESTROYED]
    assert len(destroyed) == 1
    assert destroyed[0]["material"] is None
    active = [k for k in document["keks"] if k["state"] == KeyState.ACTIVE]
    assert len(base64.b64decode(active[0]["material"])) == 32


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = document
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return change


def _delete(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda document: document.pop(key)


def _second_active(document: dict[str, Any]) -> None:
    for kek in document["keks"]:
        if kek["state"] == "decrypt_only":
            kek["state"] = "active"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("extra", 1), "unknown field"),
        (_delete("signing_key"), "lacks field"),
        (_set("format", "other"), "not a casework keyring"),
        (_set("version", 2), "unsupported keyring version"),
        (_set("version", True), "version must be an integer"),
        (_set("keks", {}), "keks must be a JSON array"),
        (_set("keks.0.colour", "red"), r"keks\[0\] has unknown field"),
        (_set("keks.1.state", "sleeping"), r"keks\[1\].state must be one of"),
        (_set("keks.1.material", "not base64!"), "not valid base64"),
        (_set("keks.1.material", base64.b64encode(bytes(31)).decode()), "exactly 32 bytes"),
        (_set("keks.1.material", 12), "base64 string"),
        (_set("keks.1.created_at", "2025-01-01T00:00:00"), "UTC offset"),
        (_set("keks.1.created_at", "yesterday"), "ISO 8601"),
        (_set("keks.1.id", "XYZ"), "8 lowercase hex"),
        (_set("keks.0.material", base64.b64encode(bytes(32)).decode()), "must not carry"),
        (_set("keks.1.material", None), "needs key material"),
        (_second_active, "exactly one active"),
        (_set("blind_index_roots", []), "blind-index root"),
        (_set("blind_index_roots.0.version", 0), "between 1 and"),
        (_set("blind_index_roots.0.version", "1"), "must be an integer"),
        (_set("signing_key.algorithm", "rsa"), "ed25519"),
        (_set("signing_key", []), "must be a JSON object"),
    ],
)
def test_defective_documents_are_refused(
    keyring: Keyring, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    document = json.loads(dump_keyring(keyring))
    document["keks"].sort(key=lambda k: ["destroyed", "decrypt_only", "active"].index(k["state"]))
    change(document)
    with pytest.raises(KeyringError, match=message) as caught:
        parse_keyring(json.dumps(document))
    assert_no_secret(str(caught.value), keyring)


def test_a_field_given_twice_is_refused(keyring: Keyring) -> None:
    text = dump_keyring(keyring).replace('"version": 1,', '"version": 1, "version": 1,', 1)
    with pytest.raises(KeyringError, match="appears twice"):
        parse_keyring(text)


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", b"\xff\xfe", "null"])
def test_text_that_is_not_a_keyring_object_is_refused(text: str | bytes) -> None:
    with pytest.raises(KeyringError):
        parse_keyring(text)


def test_parse_error_does_not_quote_the_document(keyring: Keyring) -> None:
    text = dump_keyring(keyring)
    with pytest.raises(KeyringError) as caught:
        parse_keyring(text[:-5])
    assert_no_secret(str(caught.value), keyring)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
