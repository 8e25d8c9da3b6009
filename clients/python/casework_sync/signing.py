"""HTTP Message Signatures (RFC 9421) with Ed25519, and Content-Digest (RFC 9530).

The server's contract fixes what a device signs: ``"@method" "@target-uri"``,
then ``"content-digest"`` when the request has a body and ``"authorization"``
when it carries a token; parameters ``created``, ``nonce``, ``keyid`` and
``alg="ed25519"``; label ``sig1``. The base is built by one generic function
so that the RFC's own test vector exercises the same code the client sends.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

LABEL = "sig1"
ALGORITHM = "ed25519"

ParamValue = int | str


def b64url(data: bytes) -> str:
    """base64url without padding, as the contract sends keys and proofs."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def content_digest(body: bytes) -> str:
    """The ``Content-Digest`` field value for ``body`` (RFC 9530, sha-256)."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")
    return f"sha-256=:{digest}:"


def _sf_string(value: str) -> str:
    """A structured-field string (RFC 8941 §3.3.3): quoted, with \\ and " escaped."""
    if any(ord(ch) < 0x20 or ord(ch) > 0x7E for ch in value):
        raise ValueError("signature parameters must be printable ASCII")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def signature_params(components: Sequence[str], params: Sequence[tuple[str, ParamValue]]) -> str:
    """The serialised inner list: ``("a" "b");created=1;keyid="k"`` in the given order."""
    inner = " ".join(_sf_string(name) for name in components)
    rendered = "".join(
        f";{key}={value}" if isinstance(value, int) else f";{key}={_sf_string(value)}"
        for key, value in params
    )
    return f"({inner}){rendered}"


def signature_base(components: Sequence[tuple[str, str]], params_value: str) -> bytes:
    """The signature base (RFC 9421 §2.5): one line per component, then ``@signature-params``."""
    lines = [f'"{name}": {value}' for name, value in components]
    lines.append(f'"@signature-params": {params_value}')
    return "\n".join(lines).encode("ascii")


@dataclass(frozen=True)
class SignedHeaders:
    """What a signed request adds to its headers."""

    signature_input: str
    signature: str
    content_digest: str | None

    def as_dict(self) -> dict[str, str]:
        headers = {"Signature-Input": self.signature_input, "Signature": self.signature}
        if self.content_digest is not None:
            headers["Content-Digest"] = self.content_digest
        return headers


class RequestSigner:
    """Signs device requests with the device's Ed25519 key as the server requires."""

    def __init__(self, private_key: Ed25519PrivateKey, key_id: str) -> None:
        self._key = private_key
        self.key_id = key_id
        #: Seconds to add to the local clock (learned from a server's ``server_time``).
        self.clock_offset = 0.0

    def sign(
        self,
        method: str,
        target_uri: str,
        body: bytes | None,
        authorization: str | None,
        *,
        created: int | None = None,
        nonce: str | None = None,
    ) -> SignedHeaders:
        components: list[tuple[str, str]] = [
            ("@method", method.upper()),
            ("@target-uri", target_uri),
        ]
        digest = content_digest(body) if body else None
        if digest is not None:
            components.append(("content-digest", digest))
        if authorization is not None:
            components.append(("authorization", authorization.strip()))
        params: list[tuple[str, ParamValue]] = [
            ("created", created if created is not None else int(time.time() + self.clock_offset)),
            ("nonce", nonce if nonce is not None else secrets.token_urlsafe(18)),
            ("keyid", self.key_id),
            ("alg", ALGORITHM),
        ]
        params_value = signature_params([name for name, _ in components], params)
        signature = self._key.sign(signature_base(components, params_value))
        return SignedHeaders(
            signature_input=f"{LABEL}={params_value}",
            signature=f"{LABEL}=:{base64.b64encode(signature).decode('ascii')}:",
            content_digest=digest,
        )


def verify(
    public_key: Ed25519PublicKey,
    components: Sequence[tuple[str, str]],
    params_value: str,
    signature_b64: str,
) -> bool:
    """Whether ``signature_b64`` (standard base64) signs this base; used by tests and tools."""
    try:
        public_key.verify(base64.b64decode(signature_b64), signature_base(components, params_value))
    except (InvalidSignature, ValueError):
        return False
    return True


def covered_components(
    method: str, target_uri: str, headers: Mapping[str, str]
) -> list[tuple[str, str]]:
    """The components a device request covers, read back from its headers (for checks)."""
    lower = {key.lower(): value for key, value in headers.items()}
    components = [("@method", method.upper()), ("@target-uri", target_uri)]
    if "content-digest" in lower:
        components.append(("content-digest", lower["content-digest"]))
    if "authorization" in lower:
        components.append(("authorization", lower["authorization"].strip()))
    return components


def raw_public_key(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def raw_private_key(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
