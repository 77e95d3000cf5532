"""ServerConfig from arguments and TIDINGS_* variables; the connection limit."""

from __future__ import annotations

import pytest

from tidings.errors import BadRequest, TransportUnavailable
from tidings.server import ServerConfig, config_from
from tidings.transports.tidings import NativeTransport

from .conftest import BrokerProcess


def test_defaults():
    config = config_from([], environ={})
    assert config == ServerConfig()
    assert (config.host, config.port, config.fsync) == ("127.0.0.1", 7420, "batch")
    assert config.deliver == "written"


def test_deliver_policy_from_arguments_and_environment():
    assert config_from(["--deliver", "durable"], environ={}).deliver == "durable"
    assert config_from([], environ={"TIDINGS_DELIVER": "durable"}).deliver == "durable"
    with pytest.raises(BadRequest, match="deliver must be written or durable"):
        config_from(["--deliver", "eventually"], environ={})


def test_environment_then_arguments():
    env = {"TIDINGS_PORT": "9000", "TIDINGS_DATA": "/tmp/x", "TIDINGS_FSYNC": "interval"}
    config = config_from(["--port", "9001", "--memory"], environ=env)
    assert (config.port, config.data_dir, config.fsync, config.memory) == (
        9001,
        "/tmp/x",
        "interval",
        True,
    )
    assert config_from(["--data-dir", "d"], environ={}).data_dir == "d"
    assert config_from([], environ={"TIDINGS_MEMORY": "yes"}).memory


@pytest.mark.parametrize(
    "argv, env",
    [
        (["--fsync", "sometimes"], {}),
        ([], {"TIDINGS_PORT": "seven"}),
        (["--max-frame-size", "2000000", "--max-message-size", "2000000"], {}),
    ],
)
def test_bad_settings_are_explained(argv, env):
    with pytest.raises(BadRequest):
        config_from(argv, environ=env)


def test_main_reports_bad_settings(capsys):
    from tidings.server import main

    assert main(["--fsync", "sometimes"]) == 2
    assert "fsync must be batch, interval or never" in capsys.readouterr().err


async def test_connection_limit(tmp_path):
    proc = BrokerProcess(tmp_path, memory=True, args=["--max-connections", "1"]).start()
    try:
        first = NativeTransport(proc.url, reconnect=False)
        await first.connect()
        with pytest.raises(TransportUnavailable, match="too many connections"):
            await NativeTransport(proc.url, reconnect=False).connect()
        assert await first.ping() < 1
        await first.close()
    finally:
        assert proc.stop() == 0


def test_the_server_runs_its_broker_with_the_deliver_policy(tmp_path):
    from tidings.server.app import BrokerServer

    for deliver in ("written", "durable"):
        server = BrokerServer(ServerConfig(data_dir=str(tmp_path / deliver), deliver=deliver))
        assert server.runtime.deliver == deliver
        assert server.runtime.broker.deliver_after_sync is (deliver == "durable")


def test_a_data_path_that_is_a_file_is_refused_with_what_to_give(tmp_path):
    """It failed when the store opened, with a bare 'File exists' (or 'Not a directory')."""
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(BadRequest, match=r"--data .*afile is a file; give a directory"):
        config_from(["--data", str(afile)], environ={})
    with pytest.raises(BadRequest, match=r"afile/sub: .*afile is a file; give a directory"):
        config_from(["--data", str(afile / "sub")], environ={})
    assert config_from(["--data", str(afile), "--memory"], environ={}).memory  # not used
    assert config_from(["--data", str(tmp_path / "new" / "dir")], environ={})  # created later
