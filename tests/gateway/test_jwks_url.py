"""JWKS from the provider's URL: fetched over HTTP from a loopback server, cached, fetched
again at once for an unknown kid (a rotation), kept when the provider is down."""

from __future__ import annotations

import http.server
import threading

import pytest

from tidings.errors import BadRequest
from tidings.gateway.keys import RemoteKeys
from tidings.gateway.tokens import InvalidToken, kid_of, verify

from .jwks import ISSUER, Issuer


class Provider:
    def __init__(self) -> None:
        self.document = Issuer("rsa-1", "ec-1").jwks()
        self.hits = 0
        self.down = False
        provider = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.hits += 1
                if provider.down:
                    self.send_error(503)
                    return
                body = provider.document.encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def provider():
    p = Provider()
    yield p
    p.server.shutdown()


async def test_keys_are_fetched_cached_and_refetched_for_an_unknown_kid(provider):
    old = Issuer("rsa-1", "ec-1")
    provider.document = old.jwks()
    keys = RemoteKeys(provider.url, min_interval=0.0)
    await keys.fetch()
    token = old.token("ec-1")
    await keys.ensure(kid_of(token))
    assert verify(token, None, public_keys=keys, issuer=ISSUER)["sub"] == "alice"
    assert provider.hits == 1  # a known kid: the cached keys, no fetch
    new = Issuer("rsa-2", "ec-2")  # the provider rotates
    provider.document = new.jwks()
    rotated = new.token("rsa-2")
    with pytest.raises(InvalidToken):
        verify(rotated, None, public_keys=keys, issuer=ISSUER)
    await keys.ensure(kid_of(rotated))
    assert provider.hits == 2
    assert verify(rotated, None, public_keys=keys, issuer=ISSUER)["sub"] == "alice"
    provider.down = True
    await keys.ensure("no-such-kid")  # the fetch fails: the keys are kept
    assert verify(rotated, None, public_keys=keys, issuer=ISSUER)["sub"] == "alice"


def test_plain_http_is_refused_beyond_loopback():
    with pytest.raises(BadRequest, match="https"):
        RemoteKeys("http://id.example/jwks.json")
    RemoteKeys("https://id.example/jwks.json")
