"""Topics, groups, stats and dead letters through the CLI against a real broker."""

from __future__ import annotations

import tidings


def test_topic_lifecycle(cli):
    r = cli("topic", "create", "t.admin", "--partitions", "3", "--max-age", "60",
            "--dedup-window", "30", "--json")  # fmt: skip
    assert r.code == 0, r.err
    spec = r.json()
    assert spec["partitions"] == 3 and spec["max_age"] == 60 and spec["dedup_window"] == 30
    names = [t["name"] for t in cli("topic", "list", "--json").json()]
    assert "t.admin" in names
    info = cli("topic", "info", "t.admin", "--json").json()
    assert len(info["partitions"]) == 3
    human = cli("topic", "info", "t.admin")
    assert human.code == 0 and "t.admin" in human.out
    assert cli("topic", "delete", "t.admin", "--yes", "--json").json() == {"deleted": "t.admin"}
    assert "t.admin" not in [t["name"] for t in cli("topic", "list", "--json").json()]


def test_groups_and_stats(cli):
    assert cli("pub", "t.groups", "hello", "--count", "5").code == 0
    r = cli("sub", "t.groups", "--group", "g1", "--count", "5", "--json")
    assert r.code == 0 and len(r.lines()) == 5
    groups = cli("group", "list", "t.groups", "--json").json()
    assert [(g["name"], g["lag"]) for g in groups] == [("g1", 0)]
    assert cli("group", "info", "t.groups", "g1", "--json").json()["lag"] == 0
    r = cli("group", "reset", "t.groups", "g1", "--to", "earliest", "--json")
    assert r.code == 0 and r.json()["lag"] == 5
    snap = cli("stats", "--once", "--json").json()
    [topic] = [t for t in snap["topics"] if t["topic"] == "t.groups"]
    assert topic["messages"] == 5
    assert topic["groups"][0]["ready"] == 5
    assert "t.groups" in cli("stats", "t.groups", "--once").out
    not_a_terminal = cli("stats", "t.groups")  # captured stdout: one snapshot, no live view
    assert not_a_terminal.code == 0 and "t.groups" in not_a_terminal.out


def test_dlq_list_and_replay(cli, broker):
    with tidings.connect_sync(broker.url) as client:
        client.create_topic("t.jobs")
        client.publish("t.jobs", b"poison", key="k1", headers={"x": "1"})
        sub = client.subscribe("t.jobs", "workers")
        msg = sub.next(timeout=5)
        msg.reject("cannot parse")
        sub.close()
    dlq = "t.jobs.workers.dlq"
    listed = cli("dlq", "list", "--json").json()
    [row] = [d for d in listed if d["topic"] == dlq]
    assert row["origin"] == "t.jobs" and row["group"] == "workers" and row["messages"] == 1
    [dead] = cli("dlq", "list", dlq, "--json").json()
    assert dead["reason"] == "rejected" and dead["origin"] == "t.jobs" and dead["body"] == "poison"
    done = cli("dlq", "replay", dlq, "--json").json()
    assert done == {"topic": dlq, "replayed": 1, "already_replayed": 0, "to": {"t.jobs": 1}}
    assert cli("dlq", "replay", dlq, "--json").json()["replayed"] == 0  # nothing left
    again = cli("sub", "t.jobs", "--group", "workers", "--count", "1", "--timeout", "5", "--json")
    [m] = again.lines()
    assert m["body"] == "poison" and m["key"] == "k1" and m["headers"]["x"] == "1"
    assert m["headers"]["tidings-replayed-from"] == dlq
    assert not any(k.startswith("tidings-dlq-") for k in m["headers"])
    assert cli("dlq", "list", "--json").json()[0]["pending_replay"] == 0


def test_topic_create_refuses_a_conflicting_redeclaration(cli):
    assert cli("topic", "create", "t.redeclare", "--json").code == 0
    r = cli("topic", "create", "t.redeclare", "--partitions", "8")
    assert r.code == 4, (r.out, r.err)
    assert "already exists with different settings: partitions=1 (asked 8)" in r.out + r.err
    same = cli("topic", "create", "t.redeclare", "--partitions", "1", "--json")
    assert same.code == 0 and same.json()["partitions"] == 1
    plain = cli("topic", "create", "t.redeclare", "--json")  # no options: nothing to conflict
    assert plain.code == 0
