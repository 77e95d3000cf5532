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
        self.cache_control: str | None = None
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
                if provider.cache_control is not None:
                    self.send_header("cache-control", provider.cache_control)
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


@pytest.mark.parametrize(
    ("cache_control", "fresh_for"),
    [
        (None, 300.0),  # the provider says nothing: max_age
        ("public, max-age=3600, must-revalidate", 3600.0),
        ('max-age="120"', 120.0),
        ("max-age=1", 10.0),  # never below min_interval
        ("max-age=31536000", 86400.0),  # at least daily
        ("no-cache", 10.0),
        ("max-age=soon", 300.0),  # malformed: ignored
    ],
)
async def test_the_providers_cache_control_sets_how_long_keys_stay_fresh(
    provider, cache_control, fresh_for
):
    provider.cache_control = cache_control
    keys = RemoteKeys(provider.url, max_age=300.0, min_interval=10.0)
    await keys.fetch()
    assert keys.fresh_for == fresh_for


async def test_keys_are_fetched_again_once_their_max_age_has_passed(provider):
    provider.cache_control = "max-age=60"
    keys = RemoteKeys(provider.url, max_age=3600.0, min_interval=0.0)
    await keys.ensure(None)
    await keys.ensure(None)
    assert provider.hits == 1  # fresh: no second fetch
    keys.fetched -= 61  # a minute later, as the clock would have it
    await keys.ensure(None)
    assert provider.hits == 2


def test_plain_http_is_refused_beyond_loopback():
    with pytest.raises(BadRequest, match="https"):
        RemoteKeys("http://id.example/jwks.json")
    RemoteKeys("https://id.example/jwks.json")
