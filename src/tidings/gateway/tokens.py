"""Bearer JWTs (RFC 7519) verified with a configured shared key (HS256, HS384, HS512) or with
an identity provider's public keys (RS256, ES256, ... from a JWKS or PEM file, :mod:`.keys`):
the signature, ``exp`` and ``nbf`` (with a little leeway), and ``iss``/``aud`` when configured.
The token's ``alg`` picks the check, and only a configured kind is accepted. The verified
``sub`` is the principal the gateway passes on."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .keys import KeySet

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
    key: bytes | None,
    *,
    public_keys: KeySet | None = None,
    issuer: str | None = None,
    audience: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The claims of ``token`` when it is valid, else raise :class:`InvalidToken`. ``key`` is
    the shared HMAC key (None: HS tokens are refused), ``public_keys`` the asymmetric ones."""
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
    alg = str(header.get("alg"))
    digest = ALGORITHMS.get(alg)
    if digest is None:
        from .keys import ALGORITHMS as PUBLIC

        if alg in PUBLIC and public_keys is not None:
            claims = _verify_public(token, header, public_keys, issuer, audience)
            return _subject(claims)
        accepted = [*(["HS256"] if key is not None else []), *(PUBLIC if public_keys else [])]
        raise InvalidToken(f"token algorithm {alg!r} is not accepted: use {', '.join(accepted)}")
    if key is None:
        raise InvalidToken(f"{alg} tokens are not accepted here: this gateway takes public-key "
                           "tokens (RS256, ES256, ...)")  # fmt: skip
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
    return _subject(claims)


def _subject(claims: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise InvalidToken("the token names no subject (sub)")
    return claims


def _verify_public(
    token: str,
    header: dict[str, Any],
    public_keys: KeySet,
    issuer: str | None,
    audience: str | None,
) -> dict[str, Any]:
    import jwt

    alg, kid = str(header["alg"]), header.get("kid")
    candidates = public_keys.candidates(kid if isinstance(kid, str) else None, alg)
    if not candidates:
        which = f"key id {kid!r}" if kid is not None else "key"
        raise InvalidToken(f"no configured {which} verifies {alg} tokens")
    # PyJWT >= 2.10 types options as its Options TypedDict (jwt.types); 2.8 has no such name,
    # so the plain dict stays and the decode call below carries an arg-type ignore for it
    options = {"verify_aud": audience is not None, "require": []}
    failure: InvalidToken | None = None
    for candidate in candidates:
        try:
            return dict(jwt.decode(token, candidate.key, algorithms=[alg], leeway=LEEWAY,
                                   issuer=issuer, audience=audience, options=options))  # type: ignore[arg-type]  # fmt: skip
        except jwt.InvalidSignatureError:
            failure = InvalidToken("the token's signature is not valid")
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the token's issuer is not accepted here") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("the token is not for this audience") from None
        except jwt.MissingRequiredClaimError as exc:
            what = {"iss": "issuer", "aud": "audience"}.get(exc.claim, exc.claim)
            raise InvalidToken(f"the token names no {what} ({exc.claim})") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"the token is malformed: {exc}") from None
    assert failure is not None
    raise failure


def sign(claims: dict[str, Any], key: bytes, alg: str = "HS256") -> str:
    """A token for ``claims`` (for tests and for issuing service tokens)."""

    def enc(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = enc(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    body = enc(json.dumps(claims, separators=(",", ":")).encode())
    mac = hmac.new(key, f"{head}.{body}".encode(), ALGORITHMS[alg]).digest()
    return f"{head}.{body}.{enc(mac)}"


def kid_of(token: str) -> str | None:
    """The ``kid`` in a token's header (unverified: it only picks the key), if any."""
    try:
        header = json.loads(_b64(token.split(".", 1)[0]))
    except (ValueError, IndexError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None
