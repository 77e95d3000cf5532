"""``tidings dlq list|redrive|purge`` against a real broker: a group's dead letters with
numbers as numbers, a redrive that reaches that group only under the original id, clear
words for a topic that is not a dead-letter topic and for a group with no dead letters."""

from __future__ import annotations

import tidings


def _dead_letter(broker, topic: str, bodies: list[bytes]) -> list[str]:
    with tidings.connect_sync(broker.url) as client:
        client.create_topic(topic)
        billing = client.subscribe(topic, "billing", max_deliveries=1)
        audit = client.subscribe(topic, "audit")
        ids = [client.publish(topic, b, key="k", headers={"x": "1"}).id for b in bodies]
        for _ in bodies:
            billing.next(timeout=5).reject("declined")
            audit.next(timeout=5).ack()
        billing.close()
        audit.close()
    return ids


def test_list_redrive_and_purge_a_groups_dead_letters(cli, broker):
    first, second, third = _dead_letter(broker, "t.dlq.orders", [b"o-1", b"o-2", b"o-3"])
    r = cli("dlq", "list", "t.dlq.orders", "--group", "billing", "--json")
    assert r.code == 0, r.err
    rows = r.json()
    assert [d["id"] for d in rows] == [first, second, third]
    row = rows[0]
    assert row["deliveries"] == 1 and isinstance(row["offset"], int)  # numbers, not strings
    assert (row["reason"], row["error"], row["body"]) == ("rejected", "declined", "o-1")
    assert (row["origin"], row["group"], row["headers"]) == ("t.dlq.orders", "billing", {"x": "1"})
    human = cli("dlq", "list", "t.dlq.orders", "--group", "billing")
    assert human.code == 0 and "3 dead letter(s)" in human.out and "declined" in human.out
    # the .dlq name says the same
    assert [d["id"] for d in cli("dlq", "list", "t.dlq.orders.billing.dlq", "--json").json()] == [
        first,
        second,
        third,
    ]

    r = cli("dlq", "redrive", "t.dlq.orders", "--group", "billing", "--id", second, "--json")
    assert r.code == 0, r.err
    assert r.json() == {"topic": "t.dlq.orders", "group": "billing", "redriven": 1, "ids": [second]}
    again = cli("sub", "t.dlq.orders", "--group", "billing", "--count", "1", "--timeout", "5",
                "--json").lines()  # fmt: skip
    assert [(m["id"], m["body"]) for m in again] == [(second, "o-2")]
    other = cli("sub", "t.dlq.orders", "--group", "audit", "--count", "1", "--timeout", "1",
                "--json")  # fmt: skip
    assert other.lines() == []  # audit does not get it a second time
    r = cli("dlq", "redrive", "t.dlq.orders", "--group", "billing", "--id", second)
    assert r.code == 4 and "already redriven" in r.err

    r = cli("dlq", "redrive", "t.dlq.orders", "--group", "billing", "--limit", "1")
    assert r.code == 0 and "redrove 1 dead letter(s) to group 'billing'" in r.out
    assert "only that group" in r.out
    refused = cli("dlq", "purge", "t.dlq.orders", "--group", "billing")
    assert refused.code != 0 and "--yes" in refused.err
    r = cli("dlq", "purge", "t.dlq.orders", "--group", "billing", "--yes", "--json")
    assert r.json() == {"topic": "t.dlq.orders", "group": "billing", "purged": 1}
    assert cli("dlq", "list", "t.dlq.orders", "--group", "billing", "--json").json() == []
    empty = cli("dlq", "list", "t.dlq.orders", "--group", "billing")
    assert "no dead letters wait for group 'billing'" in empty.out


def test_list_on_an_ordinary_topic_and_a_group_without_dead_letters(cli, broker):
    with tidings.connect_sync(broker.url) as client:
        client.create_topic("t.dlq.plain")
        client.publish("t.dlq.plain", b"an ordinary message")
        client.subscribe("t.dlq.plain", "billing").close()
    r = cli("dlq", "list", "t.dlq.plain")
    assert r.code == 2
    text = " ".join(r.err.split())
    assert "'t.dlq.plain' is not a dead-letter topic" in text
    assert "tidings dlq list t.dlq.plain --group billing" in text
    assert "an ordinary message" not in r.out

    r = cli("dlq", "list", "t.dlq.plain", "--group", "billing")
    assert r.code == 0, r.err
    assert "nothing was dead-lettered yet by group 'billing'" in r.out
    assert "create it first" not in r.out + r.err
    assert cli("dlq", "list", "t.dlq.plain", "--group", "billing", "--json").json() == []
    r = cli("dlq", "redrive", "t.dlq.plain", "--group", "billing")
    assert r.code == 0 and "nothing was dead-lettered yet" in r.out
    r = cli("dlq", "list", "t.dlq.plain", "--group", "nobody")
    assert r.code == 4 and "group 'nobody' does not exist" in r.err


def test_replayed_dead_letters_are_no_longer_listed(cli, broker):
    [only] = _dead_letter(broker, "t.dlq.replayed", [b"o-9"])
    assert [
        d["id"] for d in cli("dlq", "list", "t.dlq.replayed", "-g", "billing", "--json").json()
    ] == [only]
    assert cli("dlq", "replay", "t.dlq.replayed.billing.dlq", "--json").json()["replayed"] == 1
    assert cli("dlq", "list", "t.dlq.replayed", "-g", "billing", "--json").json() == []


def test_replay_skips_what_a_redrive_already_sent_back(cli, broker):
    first, _second = _dead_letter(broker, "t.dlq.mixed", [b"o-1", b"o-2"])
    r = cli("dlq", "redrive", "t.dlq.mixed", "--group", "billing", "--id", first, "--json")
    assert r.json()["ids"] == [first]
    done = cli("dlq", "replay", "t.dlq.mixed.billing.dlq", "--json").json()
    assert (done["replayed"], done["skipped_redriven_or_purged"]) == (1, 1)
    got = cli("sub", "t.dlq.mixed", "--group", "billing", "--count", "3", "--timeout", "2",
              "--json").lines()  # fmt: skip
    # o-1 once (the redrive, its own id), o-2 once (the replay, a new id): nothing twice
    assert sorted(m["body"] for m in got) == ["o-1", "o-2"]
