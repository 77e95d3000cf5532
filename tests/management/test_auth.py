"""The HTTP side uses the protocol port's users and rights: no credentials or wrong ones get
401, a read-only user cannot delete or reset, a monitoring user sees metrics (and the
overview) only, an admin may do everything."""

from __future__ import annotations

import httpx
from tests.management.conftest import ADMIN_TOKEN, MONITOR_TOKEN, READER_PASSWORD


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_callers_without_valid_credentials_get_401(secured):
    with secured.client() as http:
        for path in ("/metrics", "/api/v1/topics", "/api/v1/overview"):
            r = http.get(path)
            assert r.status_code == 401, (path, r.text)
            assert r.json()["code"] == 410
            assert "Basic" in r.headers["www-authenticate"]
        assert http.get("/api/v1/topics", headers=bearer("wrong-token")).status_code == 401
        assert http.get("/api/v1/topics", auth=("reader", "wrong")).status_code == 401
        assert http.delete("/api/v1/topics/orders.auth").status_code == 401
        r = http.get("/api/v1/topics", headers={"Authorization": "Digest abc"})
        assert r.status_code == 401 and "Bearer or Basic" in r.json()["message"]
        assert http.get("/livez").status_code == 200  # probes stay open for the kubelet


def test_a_read_only_user_reads_but_cannot_change(secured):
    with secured.client(headers=bearer(ADMIN_TOKEN)) as admin:
        assert admin.post("/api/v1/topics", json={"name": "orders.auth"}).status_code == 201
        admin.post("/api/v1/topics", json={"name": "secret.stuff"})
        r = admin.post("/api/v1/topics/orders.auth/messages", json={"body": "one"})
        assert r.status_code == 201
    with secured.client(auth=("reader", READER_PASSWORD)) as reader:
        names = [t["name"] for t in reader.get("/api/v1/topics").json()]
        assert "orders.auth" in names and "secret.stuff" not in names
        assert reader.get("/api/v1/topics/orders.auth").status_code == 200
        page = reader.get("/api/v1/topics/orders.auth/messages").json()
        assert [m["body"] for m in page["messages"]] == ["one"]
        for r in (
            reader.delete("/api/v1/topics/orders.auth"),
            reader.post("/api/v1/topics", json={"name": "orders.new"}),
            reader.post("/api/v1/topics/orders.auth/messages", json={"body": "x"}),
            reader.get("/api/v1/topics/secret.stuff"),
            reader.get("/metrics"),
            reader.get("/api/v1/connections"),
        ):
            assert r.status_code == 403, (r.request.method, r.request.url, r.text)
            assert r.json()["error"] == "Forbidden"
        assert "admin" in reader.delete("/api/v1/topics/orders.auth").json()["message"]
    with secured.client(headers=bearer(ADMIN_TOKEN)) as admin:
        assert admin.get("/api/v1/topics/orders.auth").status_code == 200  # still there


def test_a_monitoring_user_sees_metrics_only(secured):
    with secured.client(headers=bearer(MONITOR_TOKEN)) as mon:
        r = mon.get("/metrics")
        assert r.status_code == 200 and "tidings_connections" in r.text
        assert mon.get("/api/v1/overview").status_code == 200
        assert mon.get("/api/v1/topics").json() == []
        for r in (
            mon.get("/api/v1/topics/orders.auth"),
            mon.get("/api/v1/topics/orders.auth/messages"),
            mon.delete("/api/v1/topics/orders.auth"),
            mon.get("/api/v1/connections"),
        ):
            assert r.status_code == 403, (r.request.url, r.text)


def test_an_admin_may_delete_with_a_token_as_bearer_or_basic(secured):
    with secured.client(headers=bearer(ADMIN_TOKEN)) as admin:
        admin.post("/api/v1/topics", json={"name": "orders.gone"})
        assert admin.get("/metrics").status_code == 200
        assert admin.get("/api/v1/connections").status_code == 200
    with secured.client(auth=httpx.BasicAuth("", ADMIN_TOKEN)) as admin:
        assert admin.delete("/api/v1/topics/orders.gone").status_code == 204
        assert admin.get("/api/v1/topics/orders.gone").status_code == 404


def test_tidings_user_add_monitor_writes_a_monitoring_user(tmp_path):
    from tidings.server import usersfile
    from tidings.server.auth import Authenticator

    path = str(tmp_path / "users.toml")
    usersfile.add(path, "prom", {"token": "sha256$" + "0" * 64}, {}, monitor=True)
    usersfile.add(path, "plain", {"token": "sha256$" + "1" * 64}, {"subscribe": ["a"]})
    usersfile.set_secret(path, "plain", {"token": "sha256$" + "2" * 64})  # rewrites the file
    users = Authenticator.from_file(path).users
    assert users["prom"].monitor is True and users["plain"].monitor is False


def test_monitor_must_be_a_boolean(tmp_path):
    import pytest

    from tidings.errors import BadRequest
    from tidings.server.auth import Authenticator

    path = tmp_path / "users.toml"
    path.write_text('[[users]]\nname = "p"\ntoken = "sha256$00"\nmonitor = "yes"\n')
    with pytest.raises(BadRequest, match="monitor must be true or false"):
        Authenticator.from_file(str(path))
