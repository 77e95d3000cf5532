"""Browsing a topic by time over real HTTP (``GET .../messages?since=``): seconds since the
epoch or ISO 8601 find the first message published at or after that time, a time after the
last message gives an empty page at the end, and bad input is a 400 with what to give."""

from __future__ import annotations

import datetime
import secrets
import time

import tidings


def test_browse_from_a_time(open_broker):
    topic = f"browse.time.{secrets.token_hex(3)}"
    with tidings.connect_sync(open_broker.url) as client:
        client.create_topic(topic)
        for i in range(3):
            client.publish(topic, b"early %d" % i)
        time.sleep(0.3)
        middle = time.time()
        time.sleep(0.3)
        for i in range(2):
            client.publish(topic, b"late %d" % i)
    with open_broker.client() as http:
        page = http.get(f"/api/v1/topics/{topic}/messages", params={"since": str(middle)})
        assert page.status_code == 200, page.text
        assert [m["body"] for m in page.json()["messages"]] == ["late 0", "late 1"]
        iso = datetime.datetime.fromtimestamp(middle, datetime.UTC).isoformat()
        by_iso = http.get(f"/api/v1/topics/{topic}/messages", params={"since": iso}).json()
        assert [m["offset"] for m in by_iso["messages"]] == [3, 4]
        after = http.get(f"/api/v1/topics/{topic}/messages", params={"since": str(time.time())})
        assert after.json()["messages"] == [] and after.json()["next_offset"] == 5
        for bad in ("yesterday", "nan"):
            refused = http.get(f"/api/v1/topics/{topic}/messages", params={"since": bad})
            assert refused.status_code == 400 and "since" in refused.json()["message"]
        both = http.get(f"/api/v1/topics/{topic}/messages", params={"since": "1", "offset": 0})
        assert both.status_code == 400 and "not both" in both.json()["message"]
