"""``tidings pub`` and ``tidings sub`` against a real broker."""

from __future__ import annotations

import io


def test_pub_and_sub(cli):
    r = cli("pub", "t.msgs", '{"n": 1}', "--key", "k1", "--header", "type=created",
            "-H", "trace=abc", "--json")  # fmt: skip
    assert r.code == 0, r.err
    out = r.json()
    assert out["published"] == 1 and out["duplicates"] == 0
    r = cli("sub", "t.msgs", "--group", "readers", "--count", "1", "--json")
    [msg] = r.lines()
    assert msg["body"] == '{"n": 1}' and msg["key"] == "k1"
    assert msg["headers"]["type"] == "created" and msg["headers"]["trace"] == "abc"
    assert msg["delivery_count"] == 1


def test_pub_stdin_count_and_duplicates(cli, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a\nb\n\nc\n"))
    assert cli("pub", "t.lines", "-", "--json").json()["published"] == 3
    assert cli("pub", "t.lines", "x", "--count", "4", "--json").json()["published"] == 4
    first = cli("pub", "t.lines", "once", "--msg-id", "m-1", "--json").json()
    second = cli("pub", "t.lines", "once", "--msg-id", "m-1", "--json").json()
    assert first["duplicates"] == 0 and second["duplicates"] == 1
    bodies = [m["body"] for m in cli("sub", "t.lines", "--group", "g", "--count", "8",
                                     "--json").lines()]  # fmt: skip
    assert bodies == ["a", "b", "c", "x", "x", "x", "x", "once"]


def test_sub_no_ack_leaves_messages_and_timeout_stops(cli):
    cli("pub", "t.peek", "one")
    r = cli("sub", "t.peek", "--group", "g", "--no-ack", "--timeout", "1", "--json")
    assert r.code == 0 and [m["body"] for m in r.lines()] == ["one"]
    r = cli("sub", "t.peek", "--group", "g", "--timeout", "1", "--json")
    [again] = r.lines()
    assert again["body"] == "one" and again["delivery_count"] == 2
    assert cli("sub", "t.peek", "--group", "g", "--timeout", "0.5", "--json").lines() == []


def test_delay_and_ttl(cli):
    cli("pub", "t.later", "soon", "--delay", "30", "--ttl", "60")
    snap = cli("stats", "t.later", "--once", "--json").json()
    assert snap["topics"][0]["messages"] == 1
    assert cli("sub", "t.later", "--group", "g", "--timeout", "0.5", "--json").lines() == []
