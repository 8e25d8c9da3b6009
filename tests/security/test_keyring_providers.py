import json
import os
import stat
from pathlib import Path

import pytest

from casework.security.errors import KeyringError
from casework.security.keyring import Keyring
from casework.security.keyring_json import dump_keyring
from casework.security.keyring_providers import (
    EnvKeyringProvider,
    FileKeyringProvider,
    KeyringProvider,
)

from .secrets_check import assert_no_secret


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_file_provider_saves_with_mode_0600_and_loads_it_back(
    tmp_path: Path, keyring: Keyring
) -> None:
    path = tmp_path / "keyring.json"
    provider: KeyringProvider = FileKeyringProvider(path)
    provider.save(keyring)
    assert _mode(path) == 0o600
    assert provider.load().keks == keyring.keks


def test_save_replaces_atomically_without_leaving_temporary_files(
    tmp_path: Path, keyring: Keyring
) -> None:
    path = tmp_path / "keyring.json"
    provider = FileKeyringProvider(path)
    provider.save(keyring)
    keyring.rotate()
    provider.save(keyring)
    assert provider.load().active_kek() == keyring.active_kek()
    assert [p.name for p in tmp_path.iterdir()] == ["keyring.json"]
    assert _mode(path) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602, 0o610, 0o601])
def test_load_refuses_a_file_open_to_group_or_others(
    tmp_path: Path, keyring: Keyring, mode: int
) -> None:
    path = tmp_path / "keyring.json"
    FileKeyringProvider(path).save(keyring)
    path.chmod(mode)
    with pytest.raises(KeyringError) as caught:
        FileKeyringProvider(path).load()
    message = str(caught.value)
    assert f"chmod 600 {path}" in message
    assert f"{mode:04o}" in message
    assert_no_secret(message, keyring)


def test_load_accepts_an_owner_read_only_file(tmp_path: Path, keyring: Keyring) -> None:
    path = tmp_path / "keyring.json"
    FileKeyringProvider(path).save(keyring)
    path.chmod(0o400)
    assert FileKeyringProvider(path).load().keks == keyring.keks


def test_missing_file_symlink_and_folder_are_refused(tmp_path: Path, keyring: Keyring) -> None:
    with pytest.raises(KeyringError, match="no keyring file"):
        FileKeyringProvider(tmp_path / "absent.json").load()
    target = tmp_path / "real.json"
    FileKeyringProvider(target).save(keyring)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    with pytest.raises(KeyringError, match="cannot open"):
        FileKeyringProvider(link).load()
    with pytest.raises(KeyringError, match="not a regular file"):
        FileKeyringProvider(tmp_path).load()


def test_create_never_overwrites_an_existing_keyring(tmp_path: Path, keyring: Keyring) -> None:
    path = tmp_path / "keyring.json"
    provider = FileKeyringProvider(path)
    provider.create(keyring)
    assert _mode(path) == 0o600
    with pytest.raises(KeyringError, match="already exists"):
        provider.create(Keyring.generate())
    assert provider.load().keks == keyring.keks
    assert [p.name for p in tmp_path.iterdir()] == ["keyring.json"]


def test_save_into_a_missing_folder_is_a_keyring_error(tmp_path: Path, keyring: Keyring) -> None:
    with pytest.raises(KeyringError, match="cannot write"):
        FileKeyringProvider(tmp_path / "absent" / "keyring.json").save(keyring)


def test_env_provider_loads_the_json_document(keyring: Keyring) -> None:
    environ = {"CASEWORK_KEYRING": dump_keyring(keyring)}
    provider: KeyringProvider = EnvKeyringProvider("CASEWORK_KEYRING", environ)
    assert provider.load().keks == keyring.keks


def test_env_provider_reads_the_process_environment(
    monkeypatch: pytest.MonkeyPatch, keyring: Keyring
) -> None:
    monkeypatch.setenv("CASEWORK_TEST_KEYRING", dump_keyring(keyring))
    assert EnvKeyringProvider("CASEWORK_TEST_KEYRING").load().keks == keyring.keks
    assert os.environ["CASEWORK_TEST_KEYRING"]


def test_env_provider_errors(keyring: Keyring) -> None:
    with pytest.raises(KeyringError, match="CASEWORK_KEYRING is not set"):
        EnvKeyringProvider("CASEWORK_KEYRING", {}).load()
    broken = json.loads(dump_keyring(keyring))
    broken["version"] = 9
    with pytest.raises(KeyringError, match="unsupported keyring version"):
        EnvKeyringProvider("K", {"K": json.dumps(broken)}).load()
    with pytest.raises(KeyringError, match="read-only") as caught:
        EnvKeyringProvider("K", {}).save(keyring)
    assert_no_secret(str(caught.value), keyring)


def test_provider_reprs_show_only_where_the_keyring_lives(tmp_path: Path) -> None:
    assert repr(FileKeyringProvider(tmp_path / "k.json")) == (
        f"FileKeyringProvider({str(tmp_path / 'k.json')!r})"
    )
    assert repr(EnvKeyringProvider("K", {"K": "secret"})) == "EnvKeyringProvider('K')"
