"""``/api/v1/definitions`` over real HTTP between two broker processes: the topics and groups
exported from one are imported into another (partitions, retention, group settings kept), a
second import keeps everything, a conflicting topic or a group without its topic is refused
before anything changes, reply topics are left out, and only operators may do either."""

from __future__ import annotations

import secrets

import pytest

import tidings

from .conftest import MONITOR_TOKEN, start

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def two_brokers(tmp_path):
    a, b = start(tmp_path / "a"), start(tmp_path / "b")
    yield a, b
    a.proc.stop()
    b.proc.stop()


def test_export_then_import_into_another_broker(two_brokers):
    source, target = two_brokers
    tag = secrets.token_hex(3)
    orders = f"defs.orders.{tag}"
    with tidings.connect_sync(source.url) as client:
        client.create_topic(orders, partitions=3, max_age=3600)
        sub = client.subscribe(orders, group="billing", max_deliveries=4, lease=12)
        sub.close()
    with source.client() as http:
        exported = http.get("/api/v1/definitions")
        assert exported.status_code == 200, exported.text
        doc = exported.json()
    assert doc["version"] == 1
    [topic] = [t for t in doc["topics"] if t["name"] == orders]
    assert topic["partitions"] == 3 and topic["max_age"] == 3600
    [group] = [g for g in doc["groups"] if g["topic"] == orders and g["name"] == "billing"]
    assert (group["max_deliveries"], group["lease"]) == (4, 12)
    assert not any(t.get("temporary") for t in doc["topics"])

    with target.client() as http:
        done = http.post("/api/v1/definitions", json=doc)
        assert done.status_code == 200, done.text
        assert orders in done.json()["topics_created"]
        assert f"{orders}/billing" in done.json()["groups_created"]
        info = http.get(f"/api/v1/topics/{orders}").json()
        assert len(info["partitions"]) == 3 and info["spec"]["max_age"] == 3600
        g = http.get(f"/api/v1/topics/{orders}/groups/billing").json()
        assert (g["spec"]["max_deliveries"], g["spec"]["lease"]) == (4, 12)

        again = http.post("/api/v1/definitions", json=doc)  # nothing new
        assert again.status_code == 200, again.text
        again = again.json()
        assert again["topics_created"] == [] and orders in again["topics_kept"]
        assert f"{orders}/billing" in again["groups_kept"]

        other = f"defs.other.{tag}"
        clash = {"topics": [{**topic, "partitions": 5}, {"name": other}], "groups": []}
        refused = http.post("/api/v1/definitions", json=clash)
        assert refused.status_code == 409, refused.text
        assert "partitions" in refused.json()["message"]
        assert http.get(f"/api/v1/topics/{other}").status_code == 404  # nothing changed
        orphan = {"topics": [], "groups": [{"topic": f"defs.none.{tag}", "name": "g"}]}
        refused = http.post("/api/v1/definitions", json=orphan)
        assert refused.status_code == 404 and "add the topic" in refused.json()["message"]
        assert http.post("/api/v1/definitions", json={"version": 9}).status_code == 400
        assert http.post("/api/v1/definitions", json={"topics": 3}).status_code == 422


def test_only_operators_export_or_import(tmp_path):
    from .conftest import USERS

    users = tmp_path / "users.toml"
    users.write_text(USERS)
    broker = start(tmp_path, env={"TIDINGS_USERS_FILE": str(users)})
    try:
        with broker.client(headers={"Authorization": f"Bearer {MONITOR_TOKEN}"}) as monitor:
            assert monitor.get("/api/v1/definitions").status_code == 403
            assert monitor.post("/api/v1/definitions", json={}).status_code == 403
        with broker.client() as anonymous:
            assert anonymous.get("/api/v1/definitions").status_code == 401
    finally:
        broker.proc.stop()
