"""Clients that send no credentials, on a broker with a users file (docs/security.md,
"Clients without credentials"): refused, unless the file has the ``anonymous`` entry, whose
topic patterns they then get, on the native port as on MQTT (tests/mqtt/test_anonymous.py).
The entry has no secret, so nobody logs in as it; ``tidings user`` writes it; SIGHUP applies
its changes to the connections it serves."""

from __future__ import annotations

import io
import json

import pytest
from tests.helpers.broker_process import BrokerProcess
from tests.reliability.test_users_reload import reload

from tidings.cli.main import main
from tidings.errors import BadRequest, ConnectionLost, Forbidden, Unauthorized
from tidings.model import Outgoing, TopicSpec
from tidings.server.auth import Authenticator, hash_token
from tidings.transports.tidings import NativeTransport

OPS = "ops-token-0123456789abcdef"
OPS_ENTRY = f'[[users]]\nname = "ops"\ntoken = "{hash_token(OPS)}"\nadmin = [">"]\n'
ANONYMOUS_ENTRY = '[[users]]\nname = "anonymous"\npublish = ["status"]\nsubscribe = ["alerts"]\n'


@pytest.fixture
def broker(tmp_path):
    path = tmp_path / "users.toml"
    path.write_text(OPS_ENTRY + "\n" + ANONYMOUS_ENTRY)
    proc = BrokerProcess(tmp_path / "data", env={"TIDINGS_USERS_FILE": str(path)}).start()
    proc.users_path = path  # type: ignore[attr-defined]
    yield proc
    proc.stop()


async def _connect(broker: BrokerProcess, creds: str = "") -> NativeTransport:
    at = f"{creds}@" if creds else ""
    t = NativeTransport(f"tidings://{at}{broker.host}:{broker.port}", timeout=10.0,
                        reconnect=False)  # fmt: skip
    await t.connect()
    return t


async def test_a_client_without_credentials_gets_the_anonymous_rights(broker):
    ops = await _connect(broker, OPS)
    anon = await _connect(broker)
    try:
        assert anon.welcome.user == "anonymous"
        for name in ("status", "alerts", "orders"):
            await ops.create_topic(TopicSpec(name=name))
        await anon.publish("status", [Outgoing(b"up")])
        with pytest.raises(Forbidden, match="user 'anonymous' may not publish on topic 'orders'"):
            await anon.publish("orders", [Outgoing(b"forged")])
        with pytest.raises(Forbidden):
            await anon.create_topic(TopicSpec(name="mine"))
        assert {t.name for t in await anon.list_topics()} == {"status", "alerts"}
        assert "clients without credentials get the 'anonymous' entry's rights" in broker.log()
    finally:
        await ops.close()
        await anon.close()


async def test_the_anonymous_entry_is_no_login(broker):
    with pytest.raises(Unauthorized):
        await _connect(broker, "anonymous:anything-at-all")


async def test_without_the_entry_they_are_refused_and_sighup_applies_it(broker):
    ops = await _connect(broker, OPS)
    await ops.create_topic(TopicSpec(name="status"))
    await ops.close()
    anon = await _connect(broker)
    try:
        await anon.publish("status", [Outgoing(b"allowed")])
        broker.users_path.write_text(OPS_ENTRY)  # the anonymous entry removed
        await reload(broker, "0 connections updated, 1 closed")
        with pytest.raises((ConnectionLost, Forbidden)):  # it was the anonymous user's
            await anon.publish("status", [Outgoing(b"still?")])
    finally:
        await anon.close()
    with pytest.raises(Unauthorized, match="requires authentication"):
        await _connect(broker)


def test_users_file_rules_for_the_entry(tmp_path, capsys, monkeypatch):
    path = tmp_path / "users.toml"
    path.write_text('[[users]]\nname = "anonymous"\npassword = "scrypt$1$1$1$AA==$AA=="\n')
    with pytest.raises(BadRequest, match="takes no password, token or monitor"):
        Authenticator.from_file(str(path))
    path.write_text('[[users]]\nname = "orders"\nsubscribe = ["orders"]\n')
    with pytest.raises(BadRequest, match="only the entry named 'anonymous'"):
        Authenticator.from_file(str(path))
    path.unlink()

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(""))
        capsys.readouterr()
        code = main([*args, "--users-file", str(path)])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = run("user", "add", "anonymous", "--subscribe", "alerts")
    assert code == 0 and "added user 'anonymous'" in out
    auth = Authenticator.from_file(str(path))
    assert auth.cached(None, None) is auth.anonymous is not None
    assert auth.anonymous.may("subscribe", "alerts") and not auth.anonymous.may("publish", "alerts")
    assert auth.cached("someone", None) is None  # a user name without a secret is no anonymous
    code, _, err = run("user", "passwd", "anonymous", "--token")
    assert code != 0 and "has no secret" in err
    path.unlink()
    code, _, err = run("user", "add", "anonymous", "--token")
    assert code != 0 and "takes no --token" in err
    code, _, err = run("user", "add", "anonymous", "--monitor")
    assert code != 0 and "takes no password, token or --monitor" in err
    assert not path.exists()
    assert run("user", "add", "anonymous")[0] == 0
    code, out, _ = run("--json", "user", "list")
    assert code == 0 and [u["secret"] for u in json.loads(out)] == ["none"]
