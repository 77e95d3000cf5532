"""Key pairs and tokens for the public-key JWT tests: an identity provider in miniature.

``Issuer()`` makes an RSA (kid ``rsa-1``) and an EC P-256 (kid ``ec-1``) key pair; ``jwks()``
is the public JWKS document a provider publishes, ``pem(kid)`` one public key as PEM, and
``token(kid, **claims)`` a signed JWT (RS256 for RSA, ES256 for EC).
"""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://id.tidings-tests"


class Issuer:
    def __init__(self, rsa_kid: str = "rsa-1", ec_kid: str = "ec-1") -> None:
        self.private = {
            rsa_kid: rsa.generate_private_key(public_exponent=65537, key_size=2048),
            ec_kid: ec.generate_private_key(ec.SECP256R1()),
        }
        self.algs = {rsa_kid: "RS256", ec_kid: "ES256"}

    def jwks(self) -> str:
        keys = []
        for kid, key in self.private.items():
            jwk = json.loads(jwt.algorithms.get_default_algorithms()[self.algs[kid]].to_jwk(
                key.public_key()))  # fmt: skip
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": self.algs[kid]})
        return json.dumps({"keys": keys})

    def pem(self, kid: str) -> bytes:
        return (
            self.private[kid]
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def token(self, kid: str, *, with_kid: bool = True, **claims: Any) -> str:
        base = {"sub": "alice", "iss": ISSUER, "exp": time.time() + 600}
        headers = {"kid": kid} if with_kid else {}
        return jwt.encode({**base, **claims}, self.private[kid], self.algs[kid], headers=headers)
