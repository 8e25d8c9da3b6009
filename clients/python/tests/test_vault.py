"""The key file: sealed under the passphrase, refused without damage when it is wrong."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import subprocess
import sys
import time
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


DATA = {"private_key": "DEVICE-KEY", "replica_key": "REPLICA-KEY", "token": "TOKEN"}


def test_a_new_passphrase_opens_the_same_secrets_and_the_old_one_no_longer(
    tmp_path: Path,
) -> None:
    Vault.create(tmp_path, "old words", DATA, FAST_KDF)
    before = json.loads((tmp_path / KEY_FILE).read_bytes())
    Vault.unlock(tmp_path, "old words").change_passphrase("new words")
    after = json.loads((tmp_path / KEY_FILE).read_bytes())
    assert after["kdf"]["salt"] != before["kdf"]["salt"]
    assert Vault.unlock(tmp_path, "new words").data == DATA
    with pytest.raises(WrongPassphrase):
        Vault.unlock(tmp_path, "old words")
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]
    with pytest.raises(VaultError):
        Vault.unlock(tmp_path, "new words").change_passphrase("")


def test_a_change_cut_before_the_rename_leaves_the_old_passphrase_working(
    tmp_path: Path,
) -> None:
    Vault.create(tmp_path, "old words", DATA, FAST_KDF)
    staged, *_ = Vault.unlock(tmp_path, "old words").stage_passphrase("new words")
    assert staged.exists()  # the state a kill between the two steps leaves
    with pytest.raises(WrongPassphrase):
        Vault.unlock(tmp_path, "new words")
    assert Vault.unlock(tmp_path, "old words").data == DATA
    assert not staged.exists()  # the change that never happened is cleared away


_CHANGER = """
import sys
from pathlib import Path
from casework_sync.vault import Vault
home, first, second = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
print("ready", flush=True)
while True:
    for phrase, other in ((first, second), (second, first)):
        try:
            vault = Vault.unlock(home, phrase)
        except Exception:
            continue
        vault.change_passphrase(other)
        break
"""


def test_a_kill_at_any_point_of_a_change_leaves_one_passphrase_that_opens(
    tmp_path: Path,
) -> None:
    """``kill -9`` a process changing the passphrase back and forth, at random moments."""
    Vault.create(tmp_path, "first words", DATA, FAST_KDF)
    rng = random.Random(7)
    salts = set()
    for _ in range(8):
        process = subprocess.Popen(
            [sys.executable, "-c", _CHANGER, str(tmp_path), "first words", "second words"],
            stdout=subprocess.PIPE,
        )
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
        salts.add(json.loads((tmp_path / KEY_FILE).read_bytes())["kdf"]["salt"])
        opened = []
        for phrase in ("first words", "second words"):
            with contextlib.suppress(WrongPassphrase):
                opened.append(Vault.unlock(tmp_path, phrase).data)
        assert opened == [DATA]  # exactly one of the two opens, with everything in it
    assert len(salts) > 1  # the killed processes did change the passphrase in between
