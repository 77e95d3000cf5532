"""An HTTP port already in use is logged and the broker runs on without HTTP (uvicorn's own
bind failure would sys.exit() the whole broker)."""

from __future__ import annotations

import socket

from tests.helpers.broker_process import BrokerProcess

import tidings


async def test_a_busy_http_port_leaves_the_broker_running(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with BrokerProcess(tmp_path / "b", memory=True, args=["--http", f"127.0.0.1:{port}"]) as b:
            async with tidings.connect(b.url) as client:
                await client.create_topic("still.here")
                assert (await client.publish("still.here", b"x")).offset == 0
            assert "could not start on 127.0.0.1" in b.log()
            assert b.running()
