"""Signed checkpoints: the C2SP formats, byte for byte, and every way to break them."""

from __future__ import annotations

import base64
from hashlib import sha256

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from casework.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    VerifierKey,
    checkpoint_body,
    key_id,
    parse_and_verify_checkpoint,
    sign_checkpoint,
    sign_note,
    verifier_key,
    verify_note,
)

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = KEY.public_key()
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
NAME = "casework.example/audit"
ORIGIN = "casework.example/audit/v1"
ROOT = sha256(b"root").digest()


def signed(size: int = 2000, root: bytes = ROOT) -> str:
    return sign_checkpoint(KEY, NAME, ORIGIN, size, root)


# The example of the C2SP signed-note specification (and Go's sumdb/note).
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n"
    "\n"
    "\u2014 example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)


def test_the_specification_example_verifies() -> None:
    verifier = VerifierKey.parse(SPEC_VKEY)
    assert verifier.name == "example.com/foo"
    assert verifier.key_id.hex() == "530d903a"
    assert verifier.encode() == SPEC_VKEY
    body = verify_note(SPEC_NOTE, verifier.public_key, verifier.name)
    assert body == "This is an example message.\n"


def test_key_id_follows_the_specification() -> None:
    raw = PUBLIC.public_bytes_raw()
    expected = sha256(NAME.encode() + b"\n" + b"\x01" + raw).digest()[:4]
    assert key_id(NAME, PUBLIC) == expected


def test_checkpoint_text_is_exactly_the_c2sp_layout() -> None:
    text = signed()
    body, signature_line = text.split("\n\n")
    assert body + "\n" == f"{ORIGIN}\n2000\n{base64.b64encode(ROOT).decode()}\n"
    assert signature_line.startswith(f"\u2014 {NAME} ")
    assert signature_line.endswith("\n")
    blob = base64.b64decode(signature_line.split(" ")[2])
    assert len(blob) == 68
    assert blob[:4] == key_id(NAME, PUBLIC)
    PUBLIC.verify(blob[4:], (body + "\n").encode())


def test_round_trip() -> None:
    checkpoint = parse_and_verify_checkpoint(signed(), PUBLIC, NAME, ORIGIN)
    assert checkpoint == Checkpoint(ORIGIN, 2000, ROOT)
    assert parse_and_verify_checkpoint(signed(0), PUBLIC, NAME) == Checkpoint(ORIGIN, 0, ROOT)


def test_signing_is_deterministic() -> None:
    assert signed() == signed()  # Ed25519 signatures are deterministic


def _substitutes(char: str) -> list[str]:
    candidates = ["A", "a", "0", "+", " ", "\n", "=", "\u2014", "-"]
    return [c for c in candidates if c != char][:3]


def test_a_changed_character_anywhere_is_rejected() -> None:
    text = signed()
    for position, char in enumerate(text):
        for replacement in _substitutes(char):
            altered = text[:position] + replacement + text[position + 1 :]
            with pytest.raises(CheckpointError):
                parse_and_verify_checkpoint(altered, PUBLIC, NAME, ORIGIN)


def test_a_changed_byte_anywhere_is_rejected() -> None:
    data = signed().encode()
    for position in range(len(data)):
        altered = bytearray(data)
        altered[position] ^= 0x01
        try:
            text = bytes(altered).decode("utf-8")
        except UnicodeDecodeError:
            continue  # not a note at all: nothing reaches the parser
        with pytest.raises(CheckpointError):
            parse_and_verify_checkpoint(text, PUBLIC, NAME, ORIGIN)


def test_deleted_or_inserted_characters_are_rejected() -> None:
    text = signed()
    for position in range(len(text)):
        with pytest.raises(CheckpointError):
            parse_and_verify_checkpoint(text[:position] + text[position + 1 :], PUBLIC, NAME)
        with pytest.raises(CheckpointError):
            parse_and_verify_checkpoint(text[:position] + "x" + text[position:], PUBLIC, NAME)


def test_wrong_key_name_or_origin_is_rejected() -> None:
    with pytest.raises(CheckpointError, match="no signature"):
        parse_and_verify_checkpoint(signed(), OTHER_KEY.public_key(), NAME)
    with pytest.raises(CheckpointError, match="no signature"):
        parse_and_verify_checkpoint(signed(), PUBLIC, "other.example/audit")
    with pytest.raises(CheckpointError, match="another log"):
        parse_and_verify_checkpoint(signed(), PUBLIC, NAME, "other.example/log")


def test_a_forged_signature_under_the_right_key_id_is_rejected() -> None:
    forged = sign_checkpoint(OTHER_KEY, NAME, ORIGIN, 2000, ROOT)
    body, line = forged.split("\n\n")
    blob = base64.b64decode(line.split(" ")[2])
    relabelled = base64.b64encode(key_id(NAME, PUBLIC) + blob[4:]).decode()
    text = f"{body}\n\n\u2014 {NAME} {relabelled}\n"
    with pytest.raises(CheckpointError, match="does not verify"):
        parse_and_verify_checkpoint(text, PUBLIC, NAME)


def test_other_signers_lines_are_ignored_but_ours_must_verify() -> None:
    witness = sign_note(OTHER_KEY, "witness.example", checkpoint_body(ORIGIN, 5, ROOT))
    ours = sign_note(KEY, NAME, checkpoint_body(ORIGIN, 5, ROOT))
    cosigned = ours + witness.split("\n\n")[1]
    assert parse_and_verify_checkpoint(cosigned, PUBLIC, NAME).size == 5
    # The witness's line alone does not make the note ours.
    with pytest.raises(CheckpointError, match="no signature"):
        parse_and_verify_checkpoint(witness, PUBLIC, NAME)
    # A second line claiming our key that fails rejects the note.
    blob = bytearray(base64.b64decode(ours.split("\n\n")[1].split(" ")[2]))
    blob[10] ^= 0x01
    failing_line = f"\u2014 {NAME} {base64.b64encode(bytes(blob)).decode()}\n"
    with pytest.raises(CheckpointError, match="does not verify"):
        parse_and_verify_checkpoint(ours + failing_line, PUBLIC, NAME)
    with pytest.raises(CheckpointError, match="does not verify"):
        parse_and_verify_checkpoint(ours + witness.split("\n\n")[1] + failing_line, PUBLIC, NAME)


def test_too_many_signature_lines_are_rejected() -> None:
    witness = sign_note(OTHER_KEY, "witness.example", checkpoint_body(ORIGIN, 5, ROOT))
    line = witness.split("\n\n")[1]
    with pytest.raises(CheckpointError, match="too many"):
        parse_and_verify_checkpoint(signed() + line * 100, PUBLIC, NAME)


def test_non_canonical_base64_is_rejected() -> None:
    encoded_root = base64.b64encode(ROOT).decode()
    # 32 bytes leave two spare bits before the '=': setting one decodes to the same root.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = encoded_root[-2]
    sloppy = encoded_root[:-2] + alphabet[alphabet.index(last) + 1] + "="
    assert base64.b64decode(sloppy) == ROOT
    with pytest.raises(CheckpointError, match="canonical"):
        parse_and_verify_checkpoint(
            sign_note(KEY, NAME, f"{ORIGIN}\n2000\n{sloppy}\n"), PUBLIC, NAME
        )


@pytest.mark.parametrize(
    "body",
    [
        f"{ORIGIN}\n02000\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n+2000\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n-1\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n\u0662\u0660\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n9223372036854775808\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n2000\n{base64.b64encode(ROOT[:31]).decode()}\n",
        f"{ORIGIN}\n2000\n{base64.b64encode(ROOT).decode()}\nextension line\n",
        f"{ORIGIN}\n2000\n",
        f"{ORIGIN}\n2000\n{base64.b64encode(ROOT).decode()}x\n",
        f"{ORIGIN}\n2000\n{ROOT.hex()}\n",
    ],
)
def test_malformed_checkpoint_bodies_are_rejected_even_when_signed(body: str) -> None:
    with pytest.raises(CheckpointError):
        parse_and_verify_checkpoint(sign_note(KEY, NAME, body), PUBLIC, NAME, ORIGIN)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no signature block\n",
        "body\n\n",
        "body\n\n\u2014 name\n",
        "body\n\n-- name AAAA\n",
        "body\n\n\u2014 name  AAAAAAAA\n",
        "body\n\n\u2014 na+me AAAAAAAA\n",
        "body\n\n\u2014 name AAAA\n",
        "body\n\n\u2014 name !!!!!!!!\n",
        "bo\x00dy\n\n\u2014 name AAAAAAAA\n",
        "\n\n\u2014 name AAAAAAAA\n",
        "x" * 70_000 + "\n\n\u2014 name AAAAAAAA\n",
    ],
)
def test_malformed_notes_are_rejected(text: str) -> None:
    with pytest.raises(CheckpointError):
        verify_note(text, PUBLIC, "name")


def test_a_note_without_final_newline_is_rejected() -> None:
    with pytest.raises(CheckpointError):
        parse_and_verify_checkpoint(signed()[:-1], PUBLIC, NAME)


@pytest.mark.parametrize(
    ("origin", "size", "root"),
    [
        ("", 1, ROOT),
        ("a\nb", 1, ROOT),
        ("tab\there", 1, ROOT),
        (ORIGIN, -1, ROOT),
        (ORIGIN, True, ROOT),
        (ORIGIN, 1, ROOT[:31]),
        (ORIGIN, 1, ROOT.hex()),
    ],
)
def test_signing_refuses_what_could_not_be_parsed(origin: str, size: int, root: bytes) -> None:
    with pytest.raises(CheckpointError):
        sign_checkpoint(KEY, NAME, origin, size, root)


@pytest.mark.parametrize("name", ["", "with space", "a+b", "tab\tname", "nb\u00a0sp"])
def test_invalid_key_names_are_refused(name: str) -> None:
    with pytest.raises(CheckpointError, match="key name"):
        sign_checkpoint(KEY, name, ORIGIN, 1, ROOT)
    with pytest.raises(CheckpointError, match="key name"):
        verifier_key(name, PUBLIC)


def test_verifier_key_round_trip() -> None:
    text = verifier_key(NAME, PUBLIC)
    name, hex_id, encoded = text.split("+", 2)
    assert (name, hex_id) == (NAME, key_id(NAME, PUBLIC).hex())
    assert base64.b64decode(encoded) == b"\x01" + PUBLIC.public_bytes_raw()
    parsed = VerifierKey.parse(text)
    assert parsed.name == NAME
    assert parsed.public_key.public_bytes_raw() == PUBLIC.public_bytes_raw()
    assert parse_and_verify_checkpoint(signed(), parsed.public_key, parsed.name).size == 2000


@pytest.mark.parametrize(
    "text",
    [
        "name+530d903a",
        "name+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # id for another name
        "example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/foo+530d903a+AkyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/foo+530d903a+AukyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k+x",
    ],
)
def test_malformed_verifier_keys_are_rejected(text: str) -> None:
    with pytest.raises(CheckpointError):
        VerifierKey.parse(text)
