"""Public keys that verify bearer JWTs signed by an identity provider (RS256/384/512,
PS256/384/512, ES256/384/512, EdDSA), read from a file: a JWKS document (``{"keys": [...]}``,
what providers publish at their ``jwks_uri``), or PEM (a public key or a certificate).

The file is reread when it changes (checked at most every ``recheck`` seconds, and at once for
a token whose ``kid`` is unknown), so keys rotate without a restart. Each key accepts only the
algorithms of its type (and the JWK's ``alg`` when it names one): an RSA key never verifies an
HMAC token, which closes the "public key used as an HS256 secret" confusion. Signatures and
claims are checked by PyJWT (the ``tidings[gateway]`` extra installs it with cryptography).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from ..errors import BadRequest

log = logging.getLogger("tidings.gateway")

RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
ALGORITHMS = (*RSA_ALGS, *EC_ALGS.values(), "EdDSA")


@dataclass(frozen=True)
class PublicKey:
    kid: str | None
    key: Any  # a cryptography public key object
    algorithms: tuple[str, ...]


def _algorithms(key: Any, declared: str | None) -> tuple[str, ...]:
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    if isinstance(key, rsa.RSAPublicKey):
        allowed: tuple[str, ...] = RSA_ALGS
    elif isinstance(key, ec.EllipticCurvePublicKey):
        alg = EC_ALGS.get(key.curve.name)
        allowed = (alg,) if alg else ()
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        allowed = ("EdDSA",)
    else:
        allowed = ()
    if declared is not None:
        allowed = tuple(a for a in allowed if a == declared)
    return allowed


def parse(data: bytes, source: str) -> list[PublicKey]:
    """The keys in a JWKS document or PEM text; BadRequest naming what is wrong."""
    text = data.strip()
    if text.startswith(b"{"):
        return _parse_jwks(text, source)
    if b"-----BEGIN" in text:
        return [_parse_pem(text, source)]
    raise BadRequest(f'{source} is neither a JWKS document ({{"keys": [...]}}) nor PEM')


def _parse_jwks(text: bytes, source: str) -> list[PublicKey]:
    from jwt import PyJWK
    from jwt.exceptions import InvalidKeyError, PyJWKError

    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise BadRequest(f"{source} is not valid JSON: {exc}") from None
    entries = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise BadRequest(f'{source}: a JWKS document is {{"keys": [...]}} with at least one key')
    keys = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise BadRequest(f"{source}: key {n} is not a JSON object")
        if entry.get("use", "sig") != "sig" or entry.get("kty") == "oct":
            continue  # encryption keys, and shared secrets, verify no signature here
        if any(field in entry for field in ("d", "p", "q")):
            raise BadRequest(f"{source}: key {n} is a private key; give the public part only")
        try:
            jwk = PyJWK(entry)
        except (PyJWKError, InvalidKeyError) as exc:
            raise BadRequest(f"{source}: key {n} ({entry.get('kid', 'no kid')}): {exc}") from None
        algs = _algorithms(jwk.key, entry.get("alg"))
        if not algs:
            raise BadRequest(f"{source}: key {n} fits none of {', '.join(ALGORITHMS)}")
        keys.append(PublicKey(entry.get("kid"), jwk.key, algs))
    if not keys:
        raise BadRequest(f"{source} holds no signature-verifying public key")
    return keys


def _parse_pem(text: bytes, source: str) -> PublicKey:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if b"PRIVATE KEY" in text:
        raise BadRequest(f"{source} holds a private key; give the public key (PEM) only")
    key: Any  # a certificate's key may be any kind; _algorithms accepts only the signing ones
    try:
        if b"BEGIN CERTIFICATE" in text:
            key = x509.load_pem_x509_certificate(text).public_key()
        else:
            key = load_pem_public_key(text)
    except ValueError as exc:
        raise BadRequest(f"{source} is not a readable PEM public key: {exc}") from None
    algs = _algorithms(key, None)
    if not algs:
        raise BadRequest(f"{source}: the key fits none of {', '.join(ALGORITHMS)}")
    return PublicKey(None, key, algs)


class KeySet:
    """Keys by ``kid`` and algorithm, of a file (:class:`PublicKeys`) or a URL (RemoteKeys)."""

    keys: list[PublicKey]

    def _match(self, kid: str | None, alg: str) -> list[PublicKey]:
        fit = [k for k in self.keys if alg in k.algorithms]
        if kid is None:
            return fit
        named = [k for k in fit if k.kid == kid]
        return named or [k for k in fit if k.kid is None]  # a PEM key has no kid

    def candidates(self, kid: str | None, alg: str) -> list[PublicKey]:
        return self._match(kid, alg)

    async def ensure(self, kid: str | None) -> None:
        """Make the keys current before a token with ``kid`` is checked (a URL's fetch)."""


class PublicKeys(KeySet):
    """The keys of ``path``, reread when the file changes."""

    def __init__(self, path: str, *, recheck: float = 5.0) -> None:
        self.path = path
        self.recheck = recheck
        self._mtime = -1.0
        self._checked = 0.0
        self.keys: list[PublicKey] = []
        self._load()

    def _load(self) -> None:
        try:
            mtime = os.stat(self.path).st_mtime
            if mtime == self._mtime:
                return
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise BadRequest(f"cannot read the JWT public keys {self.path}: {exc}") from None
        self.keys = parse(data, self.path)
        self._mtime = mtime

    def _refresh(self, force: bool) -> None:
        now = time.monotonic()
        if now - self._checked < (0.5 if force else self.recheck):
            return
        self._checked = now
        try:
            self._load()
        except BadRequest:
            pass  # a file half-written by a rotation: keep the keys we have, try again later

    def candidates(self, kid: str | None, alg: str) -> list[PublicKey]:
        """The keys that may have signed a token with this ``kid`` and ``alg``."""
        self._refresh(False)
        found = self._match(kid, alg)
        if not found and kid is not None:
            self._refresh(True)  # a new kid: the provider may have rotated its keys
            found = self._match(kid, alg)
        return found


LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
MAX_FRESHNESS = 86400.0  # a provider's day-long max-age still lets a rotation in daily


class RemoteKeys(KeySet):
    """The JWKS an identity provider publishes at ``url`` (its ``jwks_uri``), fetched with
    httpx: at start, again once stale, and at once (at most every ``min_interval`` seconds)
    for a token whose ``kid`` is unknown, so a rotation is picked up on its first token. Stale
    means older than the response's ``Cache-Control: max-age`` (``no-cache``/``no-store``:
    ``min_interval``; bounded to ``[min_interval, 1 day]``), or ``max_age`` seconds when the
    provider sends none. A failed fetch keeps the keys it has. ``https://`` only (``http://``
    on loopback, for tests): keys over plain HTTP could be anyone's."""

    def __init__(
        self, url: str, *, max_age: float = 300.0, min_interval: float = 10.0, timeout: float = 5.0
    ) -> None:
        import httpx

        parsed = httpx.URL(url)
        if parsed.scheme != "https" and not (parsed.scheme == "http" and parsed.host in LOOPBACK):
            raise BadRequest(f"the JWKS URL must be https:// (got {url!r})")
        self.url = url
        self.max_age = max_age
        self.min_interval = min_interval
        self.timeout = timeout
        self.keys = []
        self.fetched = 0.0  # monotonic time of the last good fetch
        self.fresh_for = max_age  # seconds the last fetch stays fresh (its Cache-Control)
        self._tried = -1e9
        self.fetches = 0
        self._lock: Any = None

    async def fetch(self) -> None:
        """Fetch the JWKS now; BadRequest (keys kept) when it cannot be had or read."""
        import asyncio

        import httpx

        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            self._tried = time.monotonic()
            self.fetches += 1
            try:
                async with httpx.AsyncClient(timeout=self.timeout) as http:
                    response = await http.get(self.url, headers={"accept": "application/json"})
                response.raise_for_status()
            except httpx.HTTPError as exc:
                raise BadRequest(f"cannot fetch the JWKS {self.url}: {exc}") from None
            self.keys = parse(response.content, self.url)
            self.fetched = time.monotonic()
            self.fresh_for = self._freshness(response.headers.get("cache-control"))

    def _freshness(self, cache_control: str | None) -> float:
        """How long a response stays fresh by its ``Cache-Control`` header (RFC 9111)."""
        lifetime = None
        for directive in (cache_control or "").lower().split(","):
            name, _, value = directive.strip().partition("=")
            if name in ("no-cache", "no-store"):
                return self.min_interval
            if name == "max-age":
                try:
                    lifetime = float(value.strip().strip('"'))
                except ValueError:
                    continue  # a malformed max-age is ignored, as by caches
        if lifetime is None:
            return self.max_age
        return min(max(lifetime, self.min_interval), MAX_FRESHNESS)

    async def ensure(self, kid: str | None) -> None:
        now = time.monotonic()
        stale = now - self.fetched > self.fresh_for
        unknown = kid is not None and not any(k.kid == kid for k in self.keys)
        if (stale or unknown) and now - self._tried >= self.min_interval:
            try:
                await self.fetch()
            except BadRequest as exc:
                log.warning("gateway: %s (keeping %d keys)", exc.message, len(self.keys))
