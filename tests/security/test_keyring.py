from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from casework.security.errors import KeyringError, UnknownKeyError
from casework.security.keyring import BlindIndexRoot, Kek, Keyring, KeyState, is_kek_id

from .secrets_check import assert_no_secret


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate()


def test_generated_keyring_has_one_active_256_bit_kek(keyring: Keyring) -> None:
    [kek] = keyring.keks
    assert kek.state is KeyState.ACTIVE
    assert keyring.active_kek() == kek
    assert kek.material is not None
    assert len(kek.material) == 32
    assert is_kek_id(kek.kek_id)
    assert kek.created_at.tzinfo is not None


def test_generated_keyrings_do_not_share_secrets() -> None:
    first, second = Keyring.generate(), Keyring.generate()
    assert first.active_kek().material != second.active_kek().material
    assert first.blind_index_root().material != second.blind_index_root().material
    assert first.signing_key.private_bytes_raw() != second.signing_key.private_bytes_raw()


def test_signing_key_signs_what_the_verify_key_accepts(keyring: Keyring) -> None:
    signature = keyring.signing_key.sign(b"checkpoint")
    keyring.verify_key.verify(signature, b"checkpoint")


def test_rotate_activates_a_new_kek_and_demotes_the_old(keyring: Keyring) -> None:
    old = keyring.active_kek()
    new = keyring.rotate()
    assert new.kek_id != old.kek_id
    assert keyring.active_kek() == new
    assert keyring.kek(old.kek_id).state is KeyState.DECRYPT_ONLY
    assert keyring.kek(old.kek_id).material == old.material
    assert [k.state for k in keyring.keks].count(KeyState.ACTIVE) == 1


def test_retire_destroys_the_material_of_a_decrypt_only_kek(keyring: Keyring) -> None:
    old = keyring.active_kek()
    keyring.rotate()
    keyring.retire(old.kek_id)
    [destroyed] = [k for k in keyring.keks if k.kek_id == old.kek_id]
    assert destroyed.state is KeyState.DESTROYED
    assert destroyed.material is None
    with pytest.raises(UnknownKeyError, match="destroyed"):
        keyring.kek(old.kek_id)
    with pytest.raises(UnknownKeyError):
        destroyed.key_bytes()
    with pytest.raises(UnknownKeyError):
        keyring.retire(old.kek_id)


def test_the_active_kek_cannot_be_retired(keyring: Keyring) -> None:
    with pytest.raises(KeyringError, match="rotate first"):
        keyring.retire(keyring.active_kek().kek_id)


def test_unknown_kek_is_an_error(keyring: Keyring) -> None:
    with pytest.raises(UnknownKeyError):
        keyring.kek("00000000")
    with pytest.raises(UnknownKeyError):
        keyring.retire("00000000")


def test_a_keyring_needs_exactly_one_active_kek(keyring: Keyring) -> None:
    active = keyring.active_kek()
    second = Kek.generate(existing_ids=[active.kek_id])
    roots = keyring.blind_index_roots
    with pytest.raises(KeyringError, match="exactly one active"):
        Keyring([active, second], roots, keyring.signing_key)
    with pytest.raises(KeyringError, match="exactly one active"):
        Keyring([replace(active, state=KeyState.DECRYPT_ONLY)], roots, keyring.signing_key)


def test_duplicate_ids_and_missing_roots_are_refused(keyring: Keyring) -> None:
    active = keyring.active_kek()
    old = replace(active, state=KeyState.DECRYPT_ONLY)
    with pytest.raises(KeyringError, match="duplicate KEK id"):
        Keyring([active, old], keyring.blind_index_roots, keyring.signing_key)
    with pytest.raises(KeyringError, match="blind-index root"):
        Keyring([active], [], keyring.signing_key)
    root = keyring.blind_index_root()
    with pytest.raises(KeyringError, match="duplicate blind-index root"):
        Keyring([active], [root, root], keyring.signing_key)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kek_id": "NOTHEX!!"}, "8 lowercase hex"),
        ({"kek_id": "abc"}, "8 lowercase hex"),
        ({"created_at": datetime(2025, 1, 1)}, "timezone-aware"),
        ({"material": b"short"}, "32 bytes"),
        ({"material": None}, "needs key material"),
        ({"state": KeyState.DESTROYED}, "must not carry"),
    ],
)
def test_kek_fields_are_validated(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(KeyringError, match=message):
        replace(Kek.generate(), **changes)


def test_new_blind_index_root_becomes_current_and_keeps_the_old(keyring: Keyring) -> None:
    first = keyring.blind_index_root()
    second = keyring.new_blind_index_root()
    assert (first.version, second.version) == (1, 2)
    assert keyring.blind_index_root() == second
    assert keyring.blind_index_root(1) == first
    assert second.material != first.material
    with pytest.raises(KeyringError, match="current"):
        keyring.drop_blind_index_root(2)
    keyring.drop_blind_index_root(1)
    assert keyring.blind_index_roots == (second,)
    with pytest.raises(UnknownKeyError):
        keyring.blind_index_root(1)
    with pytest.raises(UnknownKeyError):
        keyring.drop_blind_index_root(1)


@pytest.mark.parametrize("version", [0, 2**32, True, "1"])
def test_blind_index_root_version_is_validated(version: object) -> None:
    with pytest.raises(KeyringError, match="version"):
        BlindIndexRoot(version, datetime.now(UTC), bytes(32))  # type: ignore[arg-type]


def test_no_secret_appears_in_repr_str_or_errors(keyring: Keyring) -> None:
    old = keyring.active_kek()
    keyring.rotate()
    keyring.new_blind_index_root()
    texts = [repr(keyring), str(keyring)]
    texts += [repr(k) for k in keyring.keks] + [str(k) for k in keyring.keks]
    texts += [repr(r) for r in keyring.blind_index_roots]
    for attempt in (
        lambda: keyring.kek("ffffffff"),
        lambda: keyring.retire(keyring.active_kek().kek_id),
        lambda: replace(old, material=old.material[:31] if old.material else None),
        lambda: Keyring(
            [old, keyring.active_kek()], keyring.blind_index_roots, keyring.signing_key
        ),
    ):
        with pytest.raises(KeyringError) as caught:
            attempt()
        texts.append(str(caught.value))
    for text in texts:
        assert_no_secret(text, keyring)
    assert old.kek_id in repr(old)
