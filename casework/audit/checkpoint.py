"""Signed checkpoints of the access log: C2SP ``tlog-checkpoint`` inside a C2SP ``signed-note``.

A checkpoint states "the log called <origin> had <size> entries and this Merkle
root", signed with the audit key. Auditors keep the checkpoints they have seen;
a later log that no longer matches one of them has been rewritten or rolled
back. The format is the one transparency logs use (Go's checksum database,
Sigstore, Certificate Transparency's static logs), so existing tools can read
it and the spec, not this code, is the reference::

    <origin>\\n
    <size, decimal>\\n
    <root hash, standard base64>\\n
    \\n
    \u2014 <key name> <base64(4-byte key id || 64-byte Ed25519 signature)>\\n

The signature covers the three body lines including the final newline. The key
id is ``SHA-256(key name || 0x0A || 0x01 || public key)[:4]``; 0x01 names the
Ed25519 signature type. A verifier key, the string auditors pin, is
``<name>+<hex key id>+<base64(0x01 || public key)>``.

Parsing is strict where the spec allows it to be: base64 must be canonical (so
no two texts carry the same signature), sizes have no leading zeros, and
checkpoint extension lines are rejected because casework never writes them.
Signature lines from other keys (a witness's cosignature, say) are ignored as
the spec requires, but a signature line that claims to be from the expected
key and does not verify rejects the whole note.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from hashlib import sha256

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519_TYPE = 0x01
SIGNATURE_PREFIX = "\u2014 "
HASH_SIZE = 32
MAX_SIGNATURES = 100
MAX_NOTE_LENGTH = 64 * 1024

_SIZE_PATTERN = re.compile(r"0|[1-9][0-9]{0,18}")
_HEX_KEY_ID = re.compile(r"[0-9a-f]{8}")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
_MAX_SIZE = 2**63 - 1


class CheckpointError(ValueError):
    """A note or checkpoint is malformed, unsigned, or signed by the wrong key."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a verified checkpoint vouches for."""

    origin: str
    size: int
    root: bytes


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A named Ed25519 public key, as pinned by an auditor."""

    name: str
    public_key: Ed25519PublicKey

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    def encode(self) -> str:
        """Return the signed-note verifier key string ``<name>+<hex id>+<base64 key>``."""
        key = base64.b64encode(bytes([ED25519_TYPE]) + _raw(self.public_key)).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{key}"

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Parse a verifier key string; its key id must match its name and key."""
        parts = text.split("+", 2)  # base64 may itself contain '+'
        if len(parts) != 3 or not _HEX_KEY_ID.fullmatch(parts[1]):
            raise CheckpointError("verifier key must be <name>+<8 hex digits>+<base64 key>")
        name, hex_id, encoded = parts
        _check_key_name(name)
        key_bytes = _decode_base64(encoded)
        if len(key_bytes) != 33 or key_bytes[0] != ED25519_TYPE:
            raise CheckpointError("verifier key must hold a type-0x01 (Ed25519) 32-byte key")
        verifier = cls(name, Ed25519PublicKey.from_public_bytes(key_bytes[1:]))
        if verifier.key_id.hex() != hex_id:
            raise CheckpointError("verifier key id does not match its name and key")
        return verifier


def key_id(key_name: str, public_key: Ed25519PublicKey) -> bytes:
    """Return the signed-note key id: 4 bytes binding the name, the type and the key."""
    material = key_name.encode("utf-8") + b"\n" + bytes([ED25519_TYPE]) + _raw(public_key)
    return sha256(material).digest()[:4]


def verifier_key(key_name: str, public_key: Ed25519PublicKey) -> str:
    """Return the verifier key string auditors pin to check checkpoints."""
    _check_key_name(key_name)
    return VerifierKey(key_name, public_key).encode()


def sign_note(private_key: Ed25519PrivateKey, key_name: str, body: str) -> str:
    """Return ``body`` as a signed note with one Ed25519 signature line."""
    _check_key_name(key_name)
    _check_body(body)
    public_key = private_key.public_key()
    signature = private_key.sign(body.encode("utf-8"))
    blob = base64.b64encode(key_id(key_name, public_key) + signature).decode("ascii")
    return f"{body}\n{SIGNATURE_PREFIX}{key_name} {blob}\n"


def verify_note(text: str, public_key: Ed25519PublicKey, key_name: str) -> str:
    """Return the body of a signed note once its signature by ``key_name`` verifies.

    Raises :class:`CheckpointError` if the note is malformed, carries no
    signature from that key, or carries one that fails.
    """
    if len(text) > MAX_NOTE_LENGTH:
        raise CheckpointError("note is too long")
    if _CONTROL.search(text):
        raise CheckpointError("note contains a control character")
    split = text.rfind("\n\n")
    if split < 0 or not text.endswith("\n"):
        raise CheckpointError("note must be a body, a blank line and signature lines")
    body, signature_block = text[: split + 1], text[split + 2 :]
    _check_body(body)
    wanted_id = key_id(key_name, public_key)
    lines = signature_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError("note carries too many signatures")
    verified = False
    for line in lines:
        name, blob = _parse_signature_line(line)
        if name != key_name or blob[:4] != wanted_id:
            continue  # another signer's line: ignored, as the spec requires
        try:
            public_key.verify(blob[4:], body.encode("utf-8"))
        except InvalidSignature:
            raise CheckpointError("note signature does not verify") from None
        verified = True
    if not verified:
        raise CheckpointError("note carries no signature from the expected key")
    return body


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """Return the three checkpoint lines that get signed."""
    _check_origin(origin)
    if type(size) is not int or not 0 <= size <= _MAX_SIZE:
        raise CheckpointError("checkpoint size must be a non-negative integer")
    if not isinstance(root, bytes) or len(root) != HASH_SIZE:
        raise CheckpointError("checkpoint root must be a 32-byte hash")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode('ascii')}\n"


def sign_checkpoint(
    private_key: Ed25519PrivateKey, key_name: str, origin: str, size: int, root: bytes
) -> str:
    """Return the signed checkpoint note for a log of ``size`` entries with ``root``."""
    return sign_note(private_key, key_name, checkpoint_body(origin, size, root))


def parse_and_verify_checkpoint(
    text: str, public_key: Ed25519PublicKey, key_name: str, origin: str | None = None
) -> Checkpoint:
    """Verify a checkpoint note's signature, then parse its body.

    With ``origin`` given, a checkpoint of another log is refused too. Raises
    :class:`CheckpointError` for any fault.
    """
    body = verify_note(text, public_key, key_name)
    lines = body[:-1].split("\n")
    if len(lines) != 3:
        raise CheckpointError("checkpoint body must be exactly origin, size and root")
    found_origin, size_text, root_text = lines
    _check_origin(found_origin)
    if origin is not None and found_origin != origin:
        raise CheckpointError("checkpoint is for another log")
    if not _SIZE_PATTERN.fullmatch(size_text):
        raise CheckpointError("checkpoint size must be a decimal number without leading zeros")
    size = int(size_text)
    if size > _MAX_SIZE:
        raise CheckpointError("checkpoint size is out of range")
    root = _decode_base64(root_text)
    if len(root) != HASH_SIZE:
        raise CheckpointError("checkpoint root must be a 32-byte hash")
    return Checkpoint(found_origin, size, root)


def _parse_signature_line(line: str) -> tuple[str, bytes]:
    if not line.startswith(SIGNATURE_PREFIX):
        raise CheckpointError("signature lines must start with an em dash and a space")
    parts = line[len(SIGNATURE_PREFIX) :].split(" ")
    if len(parts) != 2:
        raise CheckpointError("signature line must be a key name and a signature")
    name, encoded = parts
    _check_key_name(name)
    blob = _decode_base64(encoded)
    if len(blob) < 5:
        raise CheckpointError("signature is too short")
    return name, blob


def _decode_base64(text: str) -> bytes:
    """Decode standard base64, refusing any but the one canonical spelling."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise CheckpointError("malformed base64") from None
    if base64.b64encode(data).decode("ascii") != text:
        raise CheckpointError("base64 is not in canonical form")
    return data


def _check_key_name(name: str) -> None:
    if not name or "+" in name or any(char.isspace() for char in name):
        raise CheckpointError("key name must be non-empty, without spaces or '+'")
    if _CONTROL.search(name):
        raise CheckpointError("key name contains a control character")


def _check_origin(origin: str) -> None:
    if not origin or "\n" in origin or _CONTROL.search(origin):
        raise CheckpointError("origin must be a non-empty single line")


def _check_body(body: str) -> None:
    if not body.endswith("\n") or "\n\n" in body or body.startswith("\n"):
        raise CheckpointError("note body must be non-empty lines, each ending in a newline")
    if _CONTROL.search(body):
        raise CheckpointError("note body contains a control character")


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes_raw()
