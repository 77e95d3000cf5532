"""`tidings pub` under a users file: the error names the right that is missing (publish), and a
publish-only user can publish without the subscribe right that reading the topic needs."""

from __future__ import annotations

import pytest
from tests.helpers.broker_process import BrokerProcess

from tidings.cli.main import main
from tidings.server.auth import hash_token


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli-rights")
    path = tmp / "users.toml"
    path.write_text(
        f'[[users]]\nname = "ops"\ntoken = "{hash_token("ops-token-0000000000")}"\n'
        'admin = [">"]\n'
        f'[[users]]\nname = "reader"\ntoken = "{hash_token("reader-token-000000")}"\n'
        'subscribe = ["orders"]\n'
        f'[[users]]\nname = "writer"\ntoken = "{hash_token("writer-token-000000")}"\n'
        'publish = ["orders"]\n'
        f'[[users]]\nname = "other"\ntoken = "{hash_token("other-token-0000000")}"\n'
        'publish = ["audit"]\nsubscribe = ["audit"]\n'
    )
    with BrokerProcess(tmp / "data", env={"TIDINGS_USERS_FILE": str(path)}) as broker:
        yield broker


def run(capsys, monkeypatch, broker, token: str, *args: str):
    monkeypatch.setenv("TIDINGS_URL", f"tidings://{token}@{broker.host}:{broker.port}")
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out + err


def test_pub_without_publish_rights_says_may_not_publish(secured, capsys, monkeypatch):
    assert run(capsys, monkeypatch, secured, "ops-token-0000000000", "topic", "create",
               "orders")[0] == 0  # fmt: skip
    for token in ("reader-token-000000", "other-token-0000000"):  # no publish right on orders
        code, text = run(capsys, monkeypatch, secured, token, "pub", "orders", "hi")
        assert code == 3, text
        assert "may not publish" in text and "may not subscribe" not in text


def test_pub_with_publish_rights_only_publishes(secured, capsys, monkeypatch):
    assert run(capsys, monkeypatch, secured, "ops-token-0000000000", "topic", "create",
               "orders")[0] == 0  # fmt: skip
    code, text = run(capsys, monkeypatch, secured, "writer-token-000000", "pub", "orders", "hi")
    assert code == 0, text
    assert "published 1 message(s) to orders" in text
