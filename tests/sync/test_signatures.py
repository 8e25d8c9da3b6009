"""RFC 9421 signature bases and Ed25519 against the RFC's own test vector (B.2.6)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from casework.sync import signatures as sig

# RFC 9421, appendix B.1.4: test-key-ed25519.
PRIVATE_PEM = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----"""
PUBLIC_PEM = b"""-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----"""

# RFC 9421, appendix B.2.6: the test request, its inputs and the expected signature.
B26_INPUT = (
    'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)
B26_SIGNATURE = (
    "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1"
    "u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"
)
B26_BASE = (
    '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    '"@method": POST\n'
    '"@path": /foo\n'
    '"@authority": example.com\n'
    '"content-type": application/json\n'
    '"content-length": 18\n'
    '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" '
    '"content-length");created=1618884473;keyid="test-key-ed25519"'
)
TEST_REQUEST = sig.SignedMessage(
    method="POST",
    target_uri="https://example.com/foo?param=Value&Pet=dog",
    authority="example.com",
    path="/foo",
    query="?param=Value&Pet=dog",
    headers={
        "host": "example.com",
        "date": "Tue, 20 Apr 2021 02:07:55 GMT",
        "content-type": "application/json",
        "content-digest": "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+"
        "AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
        "content-length": "18",
    },
)


def raw_public_key() -> bytes:
    return load_pem_public_key(PUBLIC_PEM).public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_rfc9421_b26_signature_base_and_verification() -> None:
    parsed = sig.parse_signature_input(B26_INPUT, "sig-b26")
    assert parsed.params == {"created": 1618884473, "keyid": "test-key-ed25519"}
    base = sig.signature_base(TEST_REQUEST, parsed)
    assert base.decode() == B26_BASE
    signature = sig.parse_signature(B26_SIGNATURE, "sig-b26")
    assert sig.verify_ed25519(raw_public_key(), signature, base)
    # Ed25519 is deterministic: signing the base with the test key gives the RFC's bytes.
    private = load_pem_private_key(PRIVATE_PEM, password=None)
    assert isinstance(private, Ed25519PrivateKey)
    assert private.sign(base) == signature


def test_a_changed_component_fails_verification() -> None:
    parsed = sig.parse_signature_input(B26_INPUT, "sig-b26")
    changed = sig.SignedMessage(**{**TEST_REQUEST.__dict__, "path": "/bar"})
    signature = sig.parse_signature(B26_SIGNATURE, "sig-b26")
    assert not sig.verify_ed25519(raw_public_key(), signature, sig.signature_base(changed, parsed))


def test_content_digest_rfc9530() -> None:
    body = b'{"hello": "world"}\n'
    # RFC 9530 section 2's example body and its sha-256 digest.
    assert sig.content_digest(body) == "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"
    assert sig.digest_matches(sig.content_digest(body), body)
    assert not sig.digest_matches(sig.content_digest(body), body + b" ")
    assert not sig.digest_matches("sha-256=:not base64!:", body)


@pytest.mark.parametrize(
    "header",
    [
        "sig1=(@method);created=1",
        'sig1=("@method";created=1',
        'sig1=("@method");created=1;;',
        "nonsense",
        "",
    ],
)
def test_malformed_signature_input_is_refused(header: str) -> None:
    with pytest.raises(sig.SignatureFormatError):
        sig.parse_signature_input(header, "sig1")


def test_b64url_round_trip() -> None:
    data = base64.b64decode("+/+/")
    assert sig.b64url_decode(sig.b64url(data)) == data
    with pytest.raises(ValueError, match="base64url"):
        sig.b64url_decode("+/")
