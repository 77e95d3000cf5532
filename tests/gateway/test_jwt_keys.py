"""Public-key bearer JWTs (RS256, ES256) from a JWKS or PEM file: accepted when a configured
key signed them, refused with the reason otherwise (wrong key, unknown kid, expired, issuer,
audience, an HS256 token forged with the public key as its secret, alg none); keys rotate
by rewriting the file; unusable files are refused at start with what is wrong."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time

import pytest

from tidings.errors import BadRequest
from tidings.gateway.keys import PublicKeys
from tidings.gateway.tokens import InvalidToken, sign, verify

from .jwks import ISSUER, Issuer


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
def jwks_keys(issuer, tmp_path) -> PublicKeys:
    path = tmp_path / "jwks.json"
    path.write_text(issuer.jwks())
    return PublicKeys(str(path))


def check(token: str, keys: PublicKeys, **kw) -> dict:
    return verify(token, None, public_keys=keys, issuer=kw.pop("issuer", ISSUER), **kw)


def test_rs256_and_es256_tokens_from_a_jwks_are_accepted(issuer, jwks_keys):
    assert check(issuer.token("rsa-1"), jwks_keys)["sub"] == "alice"
    assert check(issuer.token("ec-1", sub="bob"), jwks_keys)["sub"] == "bob"
    # no kid: every key of the token's algorithm is tried
    assert check(issuer.token("ec-1", with_kid=False), jwks_keys)["sub"] == "alice"


def test_a_pem_public_key_verifies_tokens_of_its_type(issuer, tmp_path):
    path = tmp_path / "ec.pem"
    path.write_bytes(issuer.pem("ec-1"))
    keys = PublicKeys(str(path))
    assert check(issuer.token("ec-1"), keys)["sub"] == "alice"
    with pytest.raises(InvalidToken, match="verifies RS256"):
        check(issuer.token("rsa-1"), keys)  # an EC key takes no RSA token


def test_tokens_not_signed_by_a_configured_key_are_refused(issuer, jwks_keys):
    other = Issuer()  # same kids, other keys: an attacker's own provider
    with pytest.raises(InvalidToken, match="signature is not valid"):
        check(other.token("rsa-1"), jwks_keys)
    with pytest.raises(InvalidToken, match="signature is not valid"):
        check(other.token("ec-1"), jwks_keys)
    with pytest.raises(InvalidToken, match="key id 'nope'"):
        check(Issuer(rsa_kid="nope").token("nope"), jwks_keys)


def test_claims_are_checked(issuer, jwks_keys):
    with pytest.raises(InvalidToken, match="expired"):
        check(issuer.token("rsa-1", exp=time.time() - 3600), jwks_keys)
    with pytest.raises(InvalidToken, match="not valid yet"):
        check(issuer.token("rsa-1", nbf=time.time() + 3600), jwks_keys)
    with pytest.raises(InvalidToken, match="issuer"):
        check(issuer.token("rsa-1", iss="https://elsewhere"), jwks_keys)
    with pytest.raises(InvalidToken, match="audience"):
        check(issuer.token("rsa-1", aud="billing"), jwks_keys, audience="gateway")
    assert check(issuer.token("rsa-1", aud=["x", "gateway"]), jwks_keys, audience="gateway")
    with pytest.raises(InvalidToken, match="subject"):
        check(issuer.token("rsa-1", sub=""), jwks_keys)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_algorithm_confusion_and_alg_none_are_refused(issuer, jwks_keys, tmp_path):
    # the classic attack: an HS256 token whose HMAC secret is the (public) PEM key
    pem = issuer.pem("rsa-1")
    forged = sign({"sub": "mallory", "iss": ISSUER}, pem)
    with pytest.raises(InvalidToken, match="HS256 tokens are not accepted"):
        check(forged, jwks_keys)
    path = tmp_path / "rsa.pem"
    path.write_bytes(pem)
    with pytest.raises(InvalidToken, match="HS256 tokens are not accepted"):
        check(forged, PublicKeys(str(path)))
    head = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    body = _b64(json.dumps({"sub": "mallory", "iss": ISSUER}).encode())
    with pytest.raises(InvalidToken, match="'none' is not accepted"):
        check(f"{head}.{body}.", jwks_keys)
    # an RS256 header on an HMAC signature made with the PEM: the RSA check fails it
    head = _b64(json.dumps({"alg": "RS256", "kid": "rsa-1"}).encode())
    mac = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidToken, match="signature is not valid"):
        check(f"{head}.{body}.{_b64(mac)}", jwks_keys)


def test_shared_and_public_keys_together_each_take_their_own_tokens(issuer, jwks_keys):
    shared = b"a-shared-secret"
    hs = sign({"sub": "svc", "iss": ISSUER}, shared)
    assert verify(hs, shared, public_keys=jwks_keys, issuer=ISSUER)["sub"] == "svc"
    rs = issuer.token("rsa-1")
    assert verify(rs, shared, public_keys=jwks_keys, issuer=ISSUER)["sub"] == "alice"
    with pytest.raises(InvalidToken, match=r"not accepted: use HS256$"):
        verify(rs, shared, issuer=ISSUER)  # public-key tokens need configured public keys


def test_keys_rotate_by_rewriting_the_file(issuer, tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text(issuer.jwks())
    keys = PublicKeys(str(path))
    rotated = Issuer(rsa_kid="rsa-2", ec_kid="ec-2")
    with pytest.raises(InvalidToken, match="key id 'rsa-2'"):
        check(rotated.token("rsa-2"), keys)
    path.write_text(rotated.jwks())
    stamp = time.time() + 5  # a different mtime even on a coarse clock
    os.utime(path, (stamp, stamp))
    time.sleep(0.6)  # an unknown kid rereads the file at most twice a second
    assert check(rotated.token("rsa-2"), keys)["sub"] == "alice"
    with pytest.raises(InvalidToken, match="key id 'rsa-1'"):
        check(issuer.token("rsa-1"), keys)  # the old key is gone


def test_unusable_key_files_are_refused_with_what_is_wrong(issuer, tmp_path):
    def refused(content: bytes | str, match: str) -> None:
        path = tmp_path / "keys"
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        with pytest.raises(BadRequest, match=match):
            PublicKeys(str(path))

    with pytest.raises(BadRequest, match="cannot read"):
        PublicKeys(str(tmp_path / "missing.json"))
    refused("hello", "neither a JWKS document")
    refused('{"keys": []}', "at least one key")
    refused("{not json", "not valid JSON")
    refused('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', "no signature-verifying public key")
    jwk = json.loads(issuer.jwks())["keys"][0]
    refused(json.dumps({"keys": [{**jwk, "d": "AAAA"}]}), "private key")
    refused(json.dumps({"keys": [{**jwk, "n": "!!"}]}), "rsa-1")
    from cryptography.hazmat.primitives import serialization

    private_pem = issuer.private["rsa-1"].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    refused(private_pem, "private key")
    refused(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a readable PEM")
