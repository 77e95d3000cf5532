"""The broker's /livez and /readyz (Starlette + uvicorn in the broker's loop)."""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest
from tests.helpers.broker_process import BrokerProcess
from tests.helpers.nats_server import free_port

from tidings.errors import BadRequest
from tidings.server.config import config_from
from tidings.server.http.serve import parse_address


def test_the_broker_serves_livez_and_readyz(tmp_path):
    port = free_port()
    with BrokerProcess(tmp_path / "b", args=["--http", f"127.0.0.1:{port}"]) as broker:
        deadline = time.monotonic() + 20
        while not any(re.search(r"http on http://127.0.0.1:\d+", line) for line in broker.output):
            assert time.monotonic() < deadline, broker.log
            time.sleep(0.05)
        for path in ("/livez", "/readyz"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                assert r.status == 200
                assert json.loads(r.read())["status"] == "ok"


def test_http_option_parsing():
    assert config_from([]).http == "127.0.0.1:7421"
    assert config_from(["--http", "off"]).http == "off"
    assert config_from([], {"TIDINGS_HTTP": "0.0.0.0:9000"}).http == "0.0.0.0:9000"
    assert parse_address("off") is None
    assert parse_address("[::1]:80") == ("::1", 80)
    with pytest.raises(BadRequest, match="host:port"):
        config_from(["--http", "7421"])
