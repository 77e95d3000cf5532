"""The blocking twin runs the async client on one background loop thread."""

from __future__ import annotations

import threading

import pytest

import tidings
from tidings.errors import RequestTimeout


def test_sync_publish_subscribe(memory_url):
    with tidings.connect_sync(memory_url) as client:
        client.create_topic("orders", partitions=2)
        client.publish("orders", b"body", key="k")
        client.publish_many("orders", [tidings.Outgoing(b"two")])
        with client.subscribe("orders", "billing") as sub:
            got = []
            for msg in sub:
                got.append(msg.body)
                msg.ack()
                if len(got) == 2:
                    break
        assert sorted(got) == [b"body", b"two"]
        assert client.group_info("orders", "billing").lag == 0


def test_sync_request_reply_across_threads(memory_url):
    with tidings.connect_sync(memory_url) as client:
        client.create_topic("echo")
        sub = client.subscribe("echo", "responder")

        def serve():
            for msg in sub:
                client.reply(msg, msg.body.upper())
                msg.ack()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        assert client.request("echo", b"hi", timeout=5).body == b"HI"
        client.create_topic("silent")
        with pytest.raises(RequestTimeout):
            client.request("silent", b"hi", timeout=0.05)
        sub.close()
        thread.join(5)
        assert not thread.is_alive()


def test_sync_ack_many_and_confirmed_acks(memory_url):
    with tidings.connect_sync(memory_url) as client:
        client.create_topic("batches")
        client.publish_many("batches", [tidings.Outgoing(b"%d" % i) for i in range(30)])
        with client.subscribe("batches", "g", prefetch=30, confirm_acks=True) as sub:
            got = []
            while len(got) < 30:
                batch = sub.next_batch(30, timeout=5)
                assert batch
                got.extend(batch)
            sub.ack_many(got)  # SyncMessages are unwrapped
            assert all(m.settled for m in got)
        info = client.group_info("batches", "g")
        assert info.lag == 0 and info.in_flight == 0
