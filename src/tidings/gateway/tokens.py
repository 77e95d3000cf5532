"""Bearer JWTs verified with a configured shared key (HS256, HS384, HS512; RFC 7519): the
signature, ``exp`` and ``nbf`` (with a little leeway), and ``iss``/``aud`` when configured.
The verified ``sub`` is the principal the gateway passes on."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

ALGORITHMS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
LEEWAY = 30.0  # seconds of clock skew tolerated on exp/nbf


class InvalidToken(Exception):
    """Why a token was refused (the message is safe to show the client)."""


def _b64(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except ValueError as exc:
        raise InvalidToken("the token is not base64url") from exc


def verify(
    token: str,
    key: bytes,
    *,
    issuer: str | None = None,
    audience: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The claims of ``token`` when it is valid, else raise :class:`InvalidToken`."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("a JWT has three dot-separated parts")
    try:
        header = json.loads(_b64(parts[0]))
        claims = json.loads(_b64(parts[1]))
    except ValueError as exc:
        raise InvalidToken("the token's header or claims are not JSON") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidToken("the token's header and claims must be JSON objects")
    digest = ALGORITHMS.get(str(header.get("alg")))
    if digest is None:
        raise InvalidToken(f"unsupported token algorithm {header.get('alg')!r}: use HS256")
    expected = hmac.new(key, f"{parts[0]}.{parts[1]}".encode(), digest).digest()
    if not hmac.compare_digest(expected, _b64(parts[2])):
        raise InvalidToken("the token's signature is not valid")
    now = time.time() if now is None else now
    if "exp" in claims and now > float(claims["exp"]) + LEEWAY:
        raise InvalidToken("the token has expired")
    if "nbf" in claims and now < float(claims["nbf"]) - LEEWAY:
        raise InvalidToken("the token is not valid yet")
    if issuer is not None and claims.get("iss") != issuer:
        raise InvalidToken("the token's issuer is not accepted here")
    if audience is not None:
        aud = claims.get("aud")
        if audience not in (aud if isinstance(aud, list) else [aud]):
            raise InvalidToken("the token is not for this audience")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise InvalidToken("the token names no subject (sub)")
    return claims


def sign(claims: dict[str, Any], key: bytes, alg: str = "HS256") -> str:
    """A token for ``claims`` (for tests and for issuing service tokens)."""

    def enc(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = enc(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    body = enc(json.dumps(claims, separators=(",", ":")).encode())
    mac = hmac.new(key, f"{head}.{body}".encode(), ALGORITHMS[alg]).digest()
    return f"{head}.{body}.{enc(mac)}"
