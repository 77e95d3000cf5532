"""The httpx adapter against a real HTTP server on 127.0.0.1: retries of 503 with
Retry-After, timeouts that cancel, a breaker keyed by host:port, typed errors."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

import tidings
from tidings.errors import TransportUnavailable
from tidings.resilience import Backoff, CircuitBreaker, Counters, Pipeline, Retry
from tidings.resilience.httpx import ResilientTransport


class Handler(BaseHTTPRequestHandler):
    hits: dict[str, int] = {}

    def do_GET(self) -> None:
        n = self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path == "/flaky" and n == 1:
            self._answer(503, b"busy", {"Retry-After": "0"})
        elif self.path == "/down":
            self._answer(503, b"down", {})
        elif self.path == "/slow":
            time.sleep(1.0)
            self._answer(200, b"late", {})
        else:
            self._answer(200, b"ok", {})

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
        except (BrokenPipeError, ConnectionResetError):
            return
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout cancelled it): expected

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Handler.hits = {}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def retry() -> Retry:
    return Retry(max_attempts=3, backoff=Backoff(initial=0.01, jitter=0))


async def test_a_503_with_retry_after_is_retried(server):
    counters = Counters()
    policy = Pipeline("http", retry=retry(), observer=counters)
    async with httpx.AsyncClient(transport=ResilientTransport(policy)) as client:
        response = await client.get(f"{server}/flaky")
    assert response.status_code == 200 and response.text == "ok"
    assert Handler.hits["/flaky"] == 2 and counters["retry"] == 1


async def test_out_of_tries_the_last_response_is_returned(server):
    policy = Pipeline("http", retry=retry())
    async with httpx.AsyncClient(transport=ResilientTransport(policy)) as client:
        response = await client.get(f"{server}/down")
    assert response.status_code == 503 and response.text == "down"
    assert Handler.hits["/down"] == 3


async def test_a_timeout_cancels_and_is_typed(server):
    policy = Pipeline("http", timeout=0.2)
    async with httpx.AsyncClient(transport=ResilientTransport(policy)) as client:
        with pytest.raises(tidings.Timeout, match=r"took longer than 0\.2s"):
            await client.get(f"{server}/slow")


async def test_a_dead_host_opens_its_breaker_and_then_fails_fast():
    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    policy = Pipeline("http", breaker=CircuitBreaker(minimum_calls=2, window=2))
    async with httpx.AsyncClient(transport=ResilientTransport(policy)) as client:
        for _ in range(2):
            with pytest.raises(TransportUnavailable) as info:
                await client.get(f"http://127.0.0.1:{port}/")
            assert isinstance(info.value.__cause__, httpx.ConnectError)
        with pytest.raises(tidings.CircuitOpen):
            await client.get(f"http://127.0.0.1:{port}/")
    assert policy.circuit(f"127.0.0.1:{port}").state == "open"
