"""The signer against RFC 9421's own Ed25519 test vector, then the device profile."""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from casework_sync.signing import (
    RequestSigner,
    b64url,
    b64url_decode,
    content_digest,
    covered_components,
    signature_base,
    signature_params,
    verify,
)

# RFC 9421 Appendix B.1.4 (test-key-ed25519) and B.2.6 (signing a request using ed25519).
RFC_PRIVATE_KEY = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
"""
RFC_PUBLIC_KEY = b"""-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----
"""
RFC_COMPONENTS = [
    ("date", "Tue, 20 Apr 2021 02:07:55 GMT"),
    ("@method", "POST"),
    ("@path", "/foo"),
    ("@authority", "example.com"),
    ("content-type", "application/json"),
    ("content-length", "18"),
]
RFC_PARAMS = [("created", 1618884473), ("keyid", "test-key-ed25519")]
RFC_SIGNATURE = (
    "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
)
RFC_BASE = (
    '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    '"@method": POST\n'
    '"@path": /foo\n'
    '"@authority": example.com\n'
    '"content-type": application/json\n'
    '"content-length": 18\n'
    '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" '
    '"content-length");created=1618884473;keyid="test-key-ed25519"'
)


def _rfc_key() -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(RFC_PRIVATE_KEY, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def test_the_rfc_vector_base_and_signature_are_reproduced() -> None:
    params = signature_params([name for name, _ in RFC_COMPONENTS], RFC_PARAMS)
    base = signature_base(RFC_COMPONENTS, params)
    assert base.decode() == RFC_BASE
    # Ed25519 is deterministic: the same key and base give the RFC's bytes.
    assert base64.b64encode(_rfc_key().sign(base)).decode() == RFC_SIGNATURE


def test_the_rfc_signature_verifies_with_the_rfc_public_key() -> None:
    public = serialization.load_pem_public_key(RFC_PUBLIC_KEY)
    assert isinstance(public, Ed25519PublicKey)
    params = signature_params([name for name, _ in RFC_COMPONENTS], RFC_PARAMS)
    assert verify(public, RFC_COMPONENTS, params, RFC_SIGNATURE)
    tampered = [*RFC_COMPONENTS[:-1], ("content-length", "19")]
    assert not verify(public, tampered, params, RFC_SIGNATURE)


def test_content_digest_is_rfc_9530_sha256() -> None:
    # RFC 9530 §B.1 example: {"hello": "world"}\n
    body = b'{"hello": "world"}\n'
    expected = base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert content_digest(body) == f"sha-256=:{expected}:"
    assert content_digest(body) == "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"


def _params_of(signature_input: str) -> str:
    label, _, value = signature_input.partition("=")
    assert label == "sig1"
    return value


def test_a_signed_push_covers_method_uri_digest_and_authorization() -> None:
    key = Ed25519PrivateKey.generate()
    signer = RequestSigner(key, "device-1")
    body = b'{"mutations":[]}'
    signed = signer.sign(
        "post", "https://c.example/api/v1/sync/push", body, "Bearer tok", created=100, nonce="n1"
    )
    params = _params_of(signed.signature_input)
    assert params == (
        '("@method" "@target-uri" "content-digest" "authorization")'
        ';created=100;nonce="n1";keyid="device-1";alg="ed25519"'
    )
    headers = {**signed.as_dict(), "Authorization": "Bearer tok"}
    components = covered_components("POST", "https://c.example/api/v1/sync/push", headers)
    signature = signed.signature.removeprefix("sig1=:").removesuffix(":")
    assert verify(key.public_key(), components, params, signature)
    wrong_uri = covered_components("POST", "https://c.example/api/v1/sync/pull", headers)
    assert not verify(key.public_key(), wrong_uri, params, signature)


def test_sign_in_covers_the_digest_and_a_pull_the_authorization_only() -> None:
    signer = RequestSigner(Ed25519PrivateKey.generate(), "d")
    login = signer.sign("POST", "https://x/api/v1/auth/login", b"{}", None)
    assert login.signature_input.startswith('sig1=("@method" "@target-uri" "content-digest");')
    pull = signer.sign("GET", "https://x/api/v1/sync/changes?limit=500", None, "Bearer t")
    assert pull.signature_input.startswith('sig1=("@method" "@target-uri" "authorization");')
    assert pull.content_digest is None


def test_each_request_gets_a_fresh_nonce_and_the_clock_offset() -> None:
    signer = RequestSigner(Ed25519PrivateKey.generate(), "d")
    first = signer.sign("GET", "https://x/", None, None)
    second = signer.sign("GET", "https://x/", None, None)
    assert first.signature_input != second.signature_input
    signer.clock_offset = -10_000
    late = signer.sign("GET", "https://x/", None, None, nonce="n")
    created = int(late.signature_input.split(";created=")[1].split(";")[0])
    import time

    assert abs(created - (time.time() - 10_000)) < 5


def test_base64url_round_trip_has_no_padding() -> None:
    for size in range(0, 40):
        data = bytes(range(size))
        assert "=" not in b64url(data)
        assert b64url_decode(b64url(data)) == data
