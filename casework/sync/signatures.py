"""HTTP Message Signatures (RFC 9421) with Ed25519, and Content-Digest (RFC 9530).

Only what the sync contract uses, written out so it can be checked against the
RFC's own test vector: a Signature-Input member ``label=("c1" "c2" ...);params``,
a Signature member ``label=:base64:``, and the signature base built from derived
components (``@method``, ``@target-uri``, ``@path``, ``@authority``, ``@query``)
and header fields. Nothing here touches the database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

_TOKEN = r"[A-Za-z*][A-Za-z0-9_\-.:%*/]*"  # noqa: S105 - a grammar, not a secret
_KEY = r"[a-z*][a-z0-9_\-.*]*"
_MEMBER = re.compile(rf"\s*({_KEY})=(.*)$", re.DOTALL)
_ITEM = re.compile(r'"((?:[^"\\]|\\["\\])*)"')
_PARAM = re.compile(rf';\s*({_KEY})=("(?:[^"\\]|\\["\\])*"|-?\d+|{_TOKEN})')
_BYTES = re.compile(r"\s*:([A-Za-z0-9+/=]*):\s*$")


class SignatureFormatError(ValueError):
    """A Signature, Signature-Input or Content-Digest header that cannot be parsed."""


@dataclass(frozen=True)
class SignatureInput:
    """One parsed Signature-Input member: the covered components and the parameters."""

    label: str
    components: tuple[str, ...]
    params: dict[str, str | int] = field(default_factory=dict)
    raw_params: str = ""

    def serialised(self) -> str:
        """The ``@signature-params`` value, exactly as the signer wrote it."""
        inner = " ".join(f'"{name}"' for name in self.components)
        return f"({inner}){self.raw_params}"


def _split_members(header: str) -> dict[str, str]:
    """Split a structured-field dictionary into its members (no commas inside strings)."""
    members: dict[str, str] = {}
    current: list[str] = []
    quoted, depth = False, 0
    for char in header:
        if char == '"' and (not current or current[-1] != "\\"):
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        if char == "," and not quoted and depth == 0:
            _add_member(members, "".join(current))
            current = []
            continue
        current.append(char)
    _add_member(members, "".join(current))
    return members


def _add_member(members: dict[str, str], text: str) -> None:
    match = _MEMBER.match(text)
    if match is None:
        raise SignatureFormatError("malformed dictionary member")
    members[match.group(1)] = match.group(2).strip()


def parse_signature_input(header: str, label: str) -> SignatureInput:
    """The member ``label`` of a Signature-Input header; raises SignatureFormatError."""
    value = _split_members(header).get(label)
    if value is None or not value.startswith("("):
        raise SignatureFormatError(f"no signature input labelled {label}")
    close = value.find(")")
    if close < 0:
        raise SignatureFormatError("unterminated inner list")
    inner, raw_params = value[1:close], value[close + 1 :]
    components = tuple(_ITEM.findall(inner))
    if " ".join(f'"{c}"' for c in components) != " ".join(inner.split()):
        raise SignatureFormatError("components must be quoted strings")
    params: dict[str, str | int] = {}
    consumed = 0
    for match in _PARAM.finditer(raw_params):
        if raw_params[consumed : match.start()].strip():
            raise SignatureFormatError("malformed parameters")
        consumed = match.end()
        name, text = match.group(1), match.group(2)
        params[name] = text[1:-1] if text.startswith('"') else _number_or_token(text)
    if raw_params[consumed:].strip():
        raise SignatureFormatError("malformed parameters")
    return SignatureInput(label, components, params, raw_params)


def _number_or_token(text: str) -> str | int:
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def parse_signature(header: str, label: str) -> bytes:
    """The signature bytes of member ``label`` of a Signature header."""
    value = _split_members(header).get(label)
    match = _BYTES.match(value or "")
    if match is None:
        raise SignatureFormatError(f"no signature labelled {label}")
    try:
        return base64.b64decode(match.group(1), validate=True)
    except binascii.Error:
        raise SignatureFormatError("signature is not base64") from None


@dataclass(frozen=True)
class SignedMessage:
    """What the signature base reads from a request: derived values and header fields."""

    method: str
    target_uri: str
    authority: str
    path: str
    query: str  # with the leading "?" ("?" alone when there is none, as RFC 9421 says)
    headers: Mapping[str, str]  # lower-case names


def component_value(message: SignedMessage, name: str) -> str:
    """The value of one covered component; raises SignatureFormatError if absent."""
    derived = {
        "@method": message.method.upper(),
        "@target-uri": message.target_uri,
        "@authority": message.authority.lower(),
        "@path": message.path,
        "@query": message.query,
    }
    if name in derived:
        return derived[name]
    if name.startswith("@") or name != name.lower():
        raise SignatureFormatError(f"unsupported component {name}")
    value = message.headers.get(name)
    if value is None:
        raise SignatureFormatError(f"covered header {name} is missing")
    return " ".join(value.strip().split("\n")).strip()


def signature_base(message: SignedMessage, signature_input: SignatureInput) -> bytes:
    """The signature base of RFC 9421 section 2.5, as bytes to sign or verify."""
    lines = [f'"{name}": {component_value(message, name)}' for name in signature_input.components]
    lines.append(f'"@signature-params": {signature_input.serialised()}')
    return "\n".join(lines).encode("utf-8")


def verify_ed25519(public_key: bytes, signature: bytes, base: bytes) -> bool:
    """Whether ``signature`` is the Ed25519 signature of ``base`` by ``public_key`` (raw)."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, base)
    except (InvalidSignature, ValueError):
        return False
    return True


def content_digest(body: bytes) -> str:
    """The RFC 9530 ``Content-Digest`` value of ``body`` with sha-256."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"


def digest_matches(header: str, body: bytes) -> bool:
    """Whether the ``sha-256`` member of a Content-Digest header is the body's digest."""
    try:
        value = _split_members(header).get("sha-256")
    except SignatureFormatError:
        return False
    match = _BYTES.match(value or "")
    if match is None:
        return False
    try:
        claimed = base64.b64decode(match.group(1), validate=True)
    except binascii.Error:
        return False
    return hashlib.sha256(body).digest() == claimed


def b64url_decode(text: str) -> bytes:
    """Decode unpadded (or padded) base64url; raises ValueError."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*={0,2}", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
