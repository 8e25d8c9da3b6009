"""The key file: sealed under the passphrase, refused without damage when it is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from client_helpers import FAST_KDF

from casework_sync.vault import KEY_FILE, Vault, VaultError, WrongPassphrase, shred


def test_secrets_round_trip_and_nothing_readable_in_the_file(tmp_path: Path) -> None:
    Vault.create(tmp_path, "pass phrase", {"private_key": "SECRET-KEY", "token": "TOKEN"}, FAST_KDF)
    raw = (tmp_path / KEY_FILE).read_bytes()
    assert b"SECRET-KEY" not in raw
    assert b"TOKEN" not in raw
    assert json.loads(raw)["kdf"]["name"] == "scrypt"
    assert Vault.unlock(tmp_path, "pass phrase").data["token"] == "TOKEN"


def test_a_wrong_passphrase_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    Vault.create(tmp_path, "right", {"k": "v"}, FAST_KDF)
    before = (tmp_path / KEY_FILE).read_bytes()
    with pytest.raises(WrongPassphrase):
        Vault.unlock(tmp_path, "wrong")
    assert (tmp_path / KEY_FILE).read_bytes() == before
    assert Vault.unlock(tmp_path, "right").data == {"k": "v"}


def test_saving_reseals_with_a_new_nonce(tmp_path: Path) -> None:
    vault = Vault.create(tmp_path, "p", {"a": 1}, FAST_KDF)
    first = (tmp_path / KEY_FILE).read_bytes()
    vault.data["token"] = "t"
    vault.save()
    assert (tmp_path / KEY_FILE).read_bytes() != first
    assert Vault.unlock(tmp_path, "p").data == {"a": 1, "token": "t"}


def test_missing_or_damaged_key_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(VaultError, match="not enrolled"):
        Vault.unlock(tmp_path, "p")
    (tmp_path / KEY_FILE).write_text("{not json")
    with pytest.raises(VaultError, match="damaged"):
        Vault.unlock(tmp_path, "p")
    with pytest.raises(VaultError):
        Vault.create(tmp_path / "x", "", {}, FAST_KDF)


def test_shred_overwrites_then_removes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"canary" * 10)
    shred(path)
    assert not path.exists()
    shred(path)  # already gone: no error
