"""Witnesses: someone outside the deployment keeps the checkpoints (C2SP ``tlog-witness``).

A witness runs on an auditor's machine or another host (``casework audit
witness --url URL --state FILE --key KEYFILE``). Each run it fetches the
latest checkpoint, checks the log's signature (following the chain of signed
key rotations from the key it pinned on its first run), checks that the new
checkpoint is consistent with the last one it cosigned (an RFC 6962
consistency proof from the public tiles), cosigns it and posts the
cosignature back. Its state file then holds the latest cosigned checkpoint:
a verifier given that file (or any cosigned checkpoint) detects a rewrite,
truncation or fork of everything before it, even by someone who holds the
database and the log's own signing key.

Cosignatures are C2SP ``tlog-cosignature`` v1 with Ed25519 (signature type
0x04): the signed message is ``cosignature/v1\\ntime <t>\\n`` followed by the
checkpoint body, and the signature line carries ``key id || u64 time ||
signature``. The witness key is printed as a C2SP vkey
(``<name>+<hex key id>+<base64(0x04 || key)>``) for an administrator to
register (``POST /api/v1/audit/witnesses``).

Nothing here needs the service: the client talks HTTP only, with the standard
library, and never sends credentials (checkpoints, proofs and cosignature
posting are public; a cosignature authenticates itself).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from casework.audit.checkpoint import (
    SIGNATURE_PREFIX,
    CheckpointError,
    VerifierKey,
    parse_and_verify_checkpoint,
)
from casework.audit.keys import KeyChainError, KeyRecord, follow_chain
from casework.audit.merkle import ProofError, verify_consistency

COSIGNATURE_TYPE = 0x04
_TIME = struct.Struct(">Q")


class WitnessError(Exception):
    """The log misbehaved (inconsistent, forked, unsigned) or the witness cannot proceed."""


@dataclass(frozen=True)
class WitnessKey:
    """A witness's name and Ed25519 public key (signature type 0x04)."""

    name: str
    public_key: Ed25519PublicKey

    @property
    def key_id(self) -> bytes:
        material = self.name.encode() + b"\n" + bytes([COSIGNATURE_TYPE])
        return sha256(material + self.public_key.public_bytes_raw()).digest()[:4]

    def encode(self) -> str:
        key = bytes([COSIGNATURE_TYPE]) + self.public_key.public_bytes_raw()
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(key).decode()}"

    @classmethod
    def parse(cls, text: str) -> WitnessKey:
        parts = text.strip().split("+", 2)
        if len(parts) != 3 or len(parts[1]) != 8:
            raise CheckpointError("a witness vkey is <name>+<8 hex digits>+<base64 key>")
        name, hex_id, encoded = parts
        if not name or any(char.isspace() for char in name) or len(name) > 128:
            raise CheckpointError("a witness name is non-empty, without spaces")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise CheckpointError("malformed base64") from None
        if len(raw) != 33 or raw[0] != COSIGNATURE_TYPE:
            raise CheckpointError("a witness vkey holds a type-0x04 (cosignature/v1) Ed25519 key")
        key = cls(name, Ed25519PublicKey.from_public_bytes(raw[1:]))
        if key.key_id.hex() != hex_id:
            raise CheckpointError("the vkey's id does not match its name and key")
        return key


def cosigned_message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def cosign(private_key: Ed25519PrivateKey, name: str, body: str, timestamp: int) -> str:
    """The signature line of a timestamped cosignature of checkpoint ``body``."""
    key = WitnessKey(name, private_key.public_key())
    signature = private_key.sign(cosigned_message(body, timestamp))
    blob = key.key_id + _TIME.pack(timestamp) + signature
    return f"{SIGNATURE_PREFIX}{name} {base64.b64encode(blob).decode()}"


def verify_cosignature(line: str, key: WitnessKey, body: str) -> int:
    """Check a cosignature line by ``key`` over checkpoint ``body``; return its time."""
    if not line.startswith(SIGNATURE_PREFIX):
        raise CheckpointError("a signature line starts with an em dash and a space")
    parts = line[len(SIGNATURE_PREFIX) :].split(" ")
    if len(parts) != 2 or parts[0] != key.name:
        raise CheckpointError("the line is not by this witness")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except binascii.Error:
        raise CheckpointError("malformed base64") from None
    if len(blob) != 4 + 8 + 64 or blob[:4] != key.key_id:
        raise CheckpointError("the line is not a cosignature/v1 by this key")
    (timestamp,) = _TIME.unpack(blob[4:12])
    if timestamp > 2**63 - 1:
        raise CheckpointError("cosignature time out of range")
    try:
        key.public_key.verify(blob[12:], cosigned_message(body, timestamp))
    except InvalidSignature:
        raise CheckpointError("the cosignature does not verify") from None
    return int(timestamp)


def note_body(note: str) -> str:
    return note[: note.rfind("\n\n") + 1]


def split_note(note: str) -> tuple[str, list[str]]:
    """The body and the signature lines of a signed note."""
    split = note.rfind("\n\n")
    if split < 0:
        raise CheckpointError("not a signed note")
    return note[: split + 1], [line for line in note[split + 2 :].split("\n") if line]


# --- The witness client. ---


@dataclass
class WitnessState:
    """What a witness keeps between runs (its state file, JSON)."""

    origin: str
    log_key: str  # the log's verifier key, as pinned on the first run, then followed
    size: int
    root: str  # hex
    note: str  # the latest cosigned checkpoint note, with this witness's line

    @classmethod
    def load(cls, path: Path) -> WitnessState | None:
        if not path.exists():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})

    def save(self, path: Path) -> None:
        temporary = path.with_name(path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(descriptor, "w", encoding="utf-8") as handle:
            json.dump(self.__dict__, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)


def load_or_create_key(path: Path, name: str) -> tuple[Ed25519PrivateKey, str]:
    """The witness's key file (created 0600 on first use): the key and its name."""
    if path.exists():
        data = json.loads(path.read_text(encoding="ascii"))
        seed = base64.b64decode(data["ed25519_seed"], validate=True)
        return Ed25519PrivateKey.from_private_bytes(seed), str(data["name"])
    key = Ed25519PrivateKey.generate()
    document = {
        "name": name,
        "ed25519_seed": base64.b64encode(key.private_bytes_raw()).decode("ascii"),
    }
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(descriptor, "w", encoding="ascii") as handle:
        json.dump(document, handle)
    return key, name


class Transport(Protocol):
    """How the witness talks to the log: JSON over HTTP (a test passes the app's client)."""

    def get_json(self, url: str) -> Any: ...

    def post_json(self, url: str, body: dict[str, Any]) -> tuple[int, Any]: ...


class UrllibTransport:
    def get_json(self, url: str) -> Any:
        return _get_json(url)

    def post_json(self, url: str, body: dict[str, Any]) -> tuple[int, Any]:
        return _post_json(url, body)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - http(s) only
        return json.loads(response.read())


def _post_json(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(  # noqa: S310 - http(s) only
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def follow_keys(
    pinned: VerifierKey, keys_document: list[dict[str, Any]], origin: str
) -> VerifierKey:
    """The log's key now, reached from ``pinned`` by signed rotations only."""
    records = [KeyRecord(k["from_size"], k["vkey"], k.get("statement")) for k in keys_document]
    try:
        ranges = follow_chain(pinned, records, origin)
    except KeyChainError as error:
        raise WitnessError(str(error)) from None
    return ranges[-1].key


def run_once(
    base_url: str,
    state_path: Path,
    key_path: Path,
    name: str,
    transport: Transport | None = None,
) -> dict[str, Any]:
    """One witness round: fetch, check, cosign, post; return what happened."""
    if not base_url.startswith(("http://", "https://")):
        raise WitnessError("the URL must be http:// or https://")
    http = transport or UrllibTransport()
    _get = http.get_json
    api = base_url.rstrip("/") + "/api/v1/audit"
    private_key, name = load_or_create_key(key_path, name)
    state = WitnessState.load(state_path)
    latest = _get(f"{api}/checkpoints/latest")
    note, size = latest["note"], int(latest["size"])
    body, _lines = split_note(note)
    origin = body.split("\n", 1)[0]
    if state is None:
        log_key = VerifierKey.parse(_get(f"{api}/public-key")["verifier_key"])
    else:
        if state.origin != origin:
            raise WitnessError("the log's origin changed")
        log_key = follow_keys(VerifierKey.parse(state.log_key), _get(f"{api}/keys")["keys"], origin)
    try:
        checkpoint = parse_and_verify_checkpoint(note, log_key.public_key, log_key.name, origin)
    except CheckpointError as error:
        raise WitnessError(f"the checkpoint is not signed by the log's key: {error}") from None
    if checkpoint.size != size:
        raise WitnessError("the checkpoint's JSON and note disagree")
    if state is not None:
        old_root = bytes.fromhex(state.root)
        if checkpoint.size < state.size:
            raise WitnessError(f"the log shrank: {state.size} cosigned, now {checkpoint.size}")
        if checkpoint.size == state.size and checkpoint.root != old_root:
            raise WitnessError(f"fork: two roots for size {state.size}")
        if checkpoint.size > state.size:
            query = urllib.parse.urlencode({"from": state.size, "to": checkpoint.size})
            proof = [bytes.fromhex(h) for h in _get(f"{api}/proofs/consistency?{query}")["proof"]]
            try:
                verify_consistency(state.size, checkpoint.size, old_root, checkpoint.root, proof)
            except ProofError as error:
                raise WitnessError(f"not consistent with size {state.size}: {error}") from None
    timestamp = int(time.time())
    line = cosign(private_key, name, body, timestamp)
    status, answer = http.post_json(
        f"{api}/cosignatures", {"size": checkpoint.size, "cosignature": line}
    )
    if status not in (200, 201):
        raise WitnessError(f"the log refused the cosignature ({status}): {answer}")
    WitnessState(
        origin=origin,
        log_key=log_key.encode(),
        size=checkpoint.size,
        root=checkpoint.root.hex(),
        note=note + line + "\n",
    ).save(state_path)
    return {"size": checkpoint.size, "root": checkpoint.root.hex(), "time": timestamp}
