"""``/api/v1/users`` over real HTTP on a broker process: an operator reads the users and
their rights (never a password or token hash), with their open connections; other users get
403, an anonymous caller 401; ``POST /api/v1/users/reload`` rereads the file as SIGHUP does
(a removed user's connection is closed), refuses a broken file with 400 leaving the users in
effect, and says there is nothing to reload without --users-file."""

from __future__ import annotations

import asyncio
import time

import pytest

from tidings.transports.tidings import NativeTransport

from .conftest import ADMIN_TOKEN, MONITOR_TOKEN, READER_PASSWORD, USERS, start

pytestmark = pytest.mark.timeout(120)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def secured_here(tmp_path):
    users = tmp_path / "users.toml"
    users.write_text(USERS)
    broker = start(tmp_path, env={"TIDINGS_USERS_FILE": str(users)})
    broker.users_path = users  # type: ignore[attr-defined]
    yield broker
    broker.proc.stop()


async def test_operators_read_and_reload_the_users(secured_here):
    broker = secured_here
    url = f"tidings://reader:{READER_PASSWORD}@127.0.0.1:{broker.proc.port}"
    reader = NativeTransport(url, timeout=10.0, reconnect=False)
    await reader.connect()
    try:
        with broker.client(headers=bearer(ADMIN_TOKEN)) as ops:
            answer = ops.get("/api/v1/users")
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["authentication"] is True and body["source"].endswith("users.toml")
            by_name = {u["name"]: u for u in body["users"]}
            assert set(by_name) == {"ops", "reader", "prometheus"}
            assert by_name["reader"]["credentials"] == ["password"]
            assert by_name["reader"]["subscribe"] == ["orders.>"]
            assert by_name["reader"]["connections"] == 1
            assert by_name["ops"]["admin"] == [">"] and by_name["prometheus"]["monitor"] is True
            assert "scrypt" not in answer.text and "sha256" not in answer.text

            with broker.client(headers=bearer(MONITOR_TOKEN)) as monitor:
                assert monitor.get("/api/v1/users").status_code == 403
                assert monitor.post("/api/v1/users/reload").status_code == 403
            with broker.client(auth=("reader", READER_PASSWORD)) as other:
                refused = other.get("/api/v1/users")
                assert refused.status_code == 403 and "admin on '>'" in refused.json()["message"]
            with broker.client() as anonymous:
                assert anonymous.get("/api/v1/users").status_code == 401

            # a broken file is refused and changes nothing
            broker.users_path.write_text("[[users]\nname = ")
            refused = ops.post("/api/v1/users/reload")
            assert refused.status_code == 400, refused.text
            assert "stay in effect" in refused.json()["message"]
            assert {u["name"] for u in ops.get("/api/v1/users").json()["users"]} == set(by_name)

            # without the reader: its connection is closed
            kept = USERS.split("[[users]]")
            broker.users_path.write_text(
                "[[users]]".join(part for part in kept if 'name = "reader"' not in part)
            )
            reloaded = ops.post("/api/v1/users/reload")
            assert reloaded.status_code == 200, reloaded.text
            assert {u["name"] for u in reloaded.json()["users"]} == {"ops", "prometheus"}
            deadline = time.monotonic() + 30
            while any(c["user"] == "reader" for c in ops.get("/api/v1/connections").json()):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
    finally:
        await reader.close()


def test_nothing_to_reload_without_a_users_file(tmp_path):
    broker = start(tmp_path)
    try:
        with broker.client() as http:
            listed = http.get("/api/v1/users").json()
            assert listed == {"authentication": False, "source": "", "users": []}
            refused = http.post("/api/v1/users/reload")
            assert refused.status_code == 400 and "--users-file" in refused.json()["message"]
    finally:
        broker.proc.stop()
