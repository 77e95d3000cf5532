"""Definitions carry every setting: a source broker whose topics and groups differ from the
defaults in every field, exported, imported into an empty broker process, exports the same
document again (the round trip), and the imported groups behave by their settings."""

from __future__ import annotations

import pytest

import tidings

from .conftest import start

pytestmark = pytest.mark.timeout(120)

TOPICS = [
    {"name": "settings.orders", "partitions": 3, "retention": "limits", "max_age": 3600.0,
     "max_bytes": 1_000_000, "max_messages": 5000, "overflow": "reject", "dedup_window": 30.0,
     "max_message_size": 65536},
    {"name": "settings.jobs", "retention": "work-queue", "dedup_window": 0.0},
    {"name": "settings.parked"},
]  # fmt: skip
GROUPS = [
    {"topic": "settings.orders", "name": "billing", "lease": 12.5, "max_deliveries": 2,
     "dead_letter_topic": "settings.parked", "dead_letter_expired": True, "key_ordered": True,
     "session_timeout": 20.0},
    {"topic": "settings.orders", "name": "ledger", "mode": "ordered",
     "in_flight_per_partition": 4, "max_deliveries": 0},
    {"topic": "settings.jobs", "name": "workers", "auto_ack": True, "start": "latest"},
]  # fmt: skip


def _ours(doc):
    return (
        [t for t in doc["topics"] if t["name"].startswith("settings.")],
        [g for g in doc["groups"] if g["topic"].startswith("settings.")],
    )


def test_every_setting_survives_export_and_import_into_an_empty_broker(tmp_path):
    source = start(tmp_path / "source")
    try:
        with source.client() as http:
            for topic in TOPICS:
                assert http.post("/api/v1/topics", json=topic).status_code == 201
            with tidings.connect_sync(source.url) as client:
                for g in GROUPS:
                    kw = {k: v for k, v in g.items() if k not in ("topic", "name")}
                    client.subscribe(g["topic"], g["name"], **kw).close()
            exported = http.get("/api/v1/definitions").json()
    finally:
        source.proc.stop()
    topics, groups = _ours(exported)
    for want in TOPICS:  # the export holds every setting given
        [got] = [t for t in topics if t["name"] == want["name"]]
        assert got | want == got, (want, got)
    for want in GROUPS:
        [got] = [g for g in groups if (g["topic"], g["name"]) == (want["topic"], want["name"])]
        assert got | want == got, (want, got)

    target = start(tmp_path / "target")
    try:
        with target.client() as http:
            done = http.post("/api/v1/definitions", json=exported)
            assert done.status_code == 200, done.text
            assert _ours(http.get("/api/v1/definitions").json()) == (topics, groups)
        with tidings.connect_sync(target.url) as client:
            # billing's settings at work: max 2 deliveries, then its own dead-letter topic
            client.publish("settings.orders", b"poison", key="k")
            sub = client.subscribe("settings.orders", "billing", lease=12.5, max_deliveries=2,
                                   dead_letter_topic="settings.parked", dead_letter_expired=True,
                                   key_ordered=True, session_timeout=20.0)  # fmt: skip
            for _ in range(2):
                msg = sub.next(timeout=10)
                assert msg is not None and msg.body == b"poison"
                msg.nack()
            sub.close()
            [letter] = client.dead_letters("settings.orders", "billing")
            assert letter.body == b"poison" and letter.deliveries == 2
    finally:
        target.proc.stop()


def test_a_group_that_cannot_take_the_imported_mode_is_refused_before_anything_changes(tmp_path):
    broker = start(tmp_path / "b")
    try:
        with tidings.connect_sync(broker.url) as client:
            client.create_topic("settings.clash")
            client.subscribe("settings.clash", "billing").close()  # shared
        doc = {
            "topics": [{"name": "settings.clash"}, {"name": "settings.fresh"}],
            "groups": [
                {"topic": "settings.fresh", "name": "audit"},
                {"topic": "settings.clash", "name": "billing", "mode": "ordered"},
            ],
        }
        with broker.client() as http:
            refused = http.post("/api/v1/definitions", json=doc)
            assert refused.status_code == 409, refused.text
            assert "mode='shared' (imported 'ordered')" in refused.json()["message"]
            assert http.get("/api/v1/topics/settings.fresh").status_code == 404  # no change
    finally:
        broker.proc.stop()
