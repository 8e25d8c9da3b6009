"""A field device for tests: enrols through the API and signs every request (RFC 9421).

No bypass: the server verifies these signatures exactly as it verifies a real
client's. Knobs (``created``, ``nonce``, ``tamper``) let tests send the requests a
broken or hostile client would.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from casework.sync import signatures as sig

Send = Callable[..., Any]


def public_key_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return sig.b64url(raw)


def signed_headers(
    key: Ed25519PrivateKey,
    keyid: str,
    method: str,
    url: str,
    body: bytes,
    token: str | None,
    *,
    created: int | None = None,
    nonce: str | None = None,
    components: list[str] | None = None,
) -> dict[str, str]:
    """Headers of a signed request to ``url`` (absolute) with ``body``."""
    headers: dict[str, str] = {}
    if body:
        headers["Content-Type"] = "application/json"
        headers["Content-Digest"] = sig.content_digest(body)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if components is None:
        components = ["@method", "@target-uri"]
        components += ["content-digest"] if body else []
        components += ["authorization"] if token is not None else []
    created = int(time.time()) if created is None else created
    nonce = nonce or secrets.token_urlsafe(16)
    params = f';created={created};nonce="{nonce}";keyid="{keyid}";alg="ed25519"'
    signature_input = sig.SignatureInput("sig1", tuple(components), raw_params=params)
    parts = urlsplit(url)
    message = sig.SignedMessage(
        method=method,
        target_uri=url,
        authority=parts.netloc,
        path=parts.path,
        query=f"?{parts.query}",
        headers={name.lower(): value for name, value in headers.items()},
    )
    signature = key.sign(sig.signature_base(message, signature_input))
    headers["Signature-Input"] = "sig1=" + signature_input.serialised()
    headers["Signature"] = "sig1=:" + base64.b64encode(signature).decode() + ":"
    return headers


class Device:
    """An enrolled device driving a Flask test client (or any ``send`` callable)."""

    def __init__(
        self, client: Any, device_id: str, key: Ed25519PrivateKey, base: str = "http://localhost"
    ) -> None:
        self.client = client
        self.device_id = device_id
        self.key = key
        self.base = base
        self.token: str | None = None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | bool | None = True,
        tamper: bytes | None = None,
        headers: dict[str, str] | None = None,
        **knobs: Any,
    ) -> Any:
        """Send a signed request; ``token=True`` uses the signed-in token, False none."""
        raw = b"" if body is None else json.dumps(body).encode()
        bearer = self.token if token is True else (None if token is False else token)
        signed = signed_headers(
            self.key, self.device_id, method, self.base + path, raw, bearer, **knobs
        )
        signed.update(headers or {})
        return self.client.open(
            path, method=method, data=tamper if tamper is not None else raw, headers=signed
        )

    def login(self, username: str, password: str, totp: str | None = None) -> Any:
        body = {"username": username, "password": password}
        if totp is not None:
            body["totp"] = totp
        response = self.request("POST", "/api/v1/auth/login", body, token=False)
        if response.status_code == 200:
            self.token = response.get_json()["token"]
        return response

    def pull(self, cursor: str | None = None, limit: int | None = None) -> Any:
        query = []
        if cursor is not None:
            query.append(f"cursor={cursor}")
        if limit is not None:
            query.append(f"limit={limit}")
        path = "/api/v1/sync/changes" + ("?" + "&".join(query) if query else "")
        return self.request("GET", path)

    def push(self, mutations: list[dict[str, Any]]) -> Any:
        return self.request("POST", "/api/v1/sync/push", {"mutations": mutations})


def enrol(client: Any, code: str, *, base: str = "http://localhost") -> Device:
    """Enrol a new key pair with ``code`` through the API."""
    key = Ed25519PrivateKey.generate()
    proof = sig.b64url(key.sign(code.encode()))
    response = client.post(
        "/api/v1/devices", json={"code": code, "public_key": public_key_b64(key), "proof": proof}
    )
    assert response.status_code == 201, response.get_json()
    return Device(client, response.get_json()["device_id"], key, base)


def new_mutation(seq: int, op: str, changes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "mutation_id": str(uuid.uuid4()),
        "device_seq": seq,
        "op": op,
        "changes": changes,
        **extra,
    }
