"""Security over the wire: authentication, permissions, private reply topics, leases, TLS."""

from __future__ import annotations

import asyncio

import pytest
from tests.helpers.broker_process import BrokerProcess

from tidings.errors import Forbidden, LeaseLost, TransportUnavailable, Unauthorized
from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.protocol import constants, decode_body
from tidings.protocol import messages as m
from tidings.server.auth import Authenticator, hash_password, hash_token
from tidings.transports.tidings import NativeTransport

from .certs import make_certs

TOKEN = "ops-token-0123456789abcdef"
USERS = f"""
[[users]]
name = "orders"
password = "{hash_password("orders-pw")}"
publish = ["orders", "orders.*"]
subscribe = ["payments.*"]

[[users]]
name = "payments"
password = "{hash_password("pay:pw@x")}"
publish = ["payments.*"]
subscribe = ["orders", "orders.*"]

[[users]]
name = "ops"
token = "{hash_token(TOKEN)}"
admin = [">"]
"""


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory):
    directory = tmp_path_factory.mktemp("secure")
    users = directory / "users.toml"
    users.write_text(USERS)
    proc = BrokerProcess(
        directory / "data",
        args=["--heartbeat", "1.0"],
        env={"TIDINGS_USERS_FILE": str(users)},
    )
    proc.start()
    yield proc
    proc.stop()


async def _connect(url: str, **options) -> NativeTransport:
    t = NativeTransport(url, timeout=10.0, reconnect=False, **options)
    await t.connect()
    return t


def _url(broker, creds: str = "") -> str:
    return f"tidings://{creds}{broker.host}:{broker.port}"


async def test_the_start_log_says_how_the_broker_is_secured(secure_broker):
    for _ in range(50):
        if "bound to 127.0.0.1 only" in secure_broker.log():
            break
        await asyncio.sleep(0.05)
    log = secure_broker.log()
    assert "authentication required (3 users" in log
    assert "bound to 127.0.0.1 only" in log


@pytest.mark.parametrize(
    "creds",
    ["", "orders:wrong@", "nobody:orders-pw@", "not-a-token@", "orders@"],
    ids=["none", "bad-password", "unknown-user", "bad-token", "password-as-token"],
)
async def test_bad_or_missing_credentials_are_refused(secure_broker, creds):
    with pytest.raises(Unauthorized, match="authentication"):
        await _connect(_url(secure_broker, creds))


async def test_password_token_and_options_authenticate(secure_broker, monkeypatch):
    for t in (
        await _connect(_url(secure_broker, "orders:orders-pw@")),
        await _connect(_url(secure_broker, "payments:pay%3Apw%40x@")),  # quoted in the URL
        await _connect(_url(secure_broker, f"{TOKEN}@")),
        await _connect(_url(secure_broker), user="orders", token="orders-pw"),
    ):
        assert t.welcome is not None and t.welcome.user in ("orders", "payments", "ops")
        await t.close()
    monkeypatch.setenv("TIDINGS_TOKEN", TOKEN)
    t = await _connect(_url(secure_broker))
    assert t.welcome.user == "ops"
    await t.close()


async def test_permissions_by_topic_pattern(secure_broker):
    ops = await _connect(_url(secure_broker, f"{TOKEN}@"))
    orders = await _connect(_url(secure_broker, "orders:orders-pw@"))
    payments = await _connect(_url(secure_broker, "payments:pay%3Apw%40x@"))
    try:
        for name in ("orders", "orders.eu", "payments.done", "secret"):
            await ops.create_topic(TopicSpec(name=name))
        with pytest.raises(Forbidden, match="may not admin on topic 'audit'"):
            await orders.create_topic(TopicSpec(name="audit"))
        await orders.publish("orders.eu", [Outgoing(b"o1")])
        with pytest.raises(Forbidden, match=r"may not publish on topic 'payments\.done'"):
            await orders.publish("payments.done", [Outgoing(b"x")])
        with pytest.raises(Forbidden, match=r"may not subscribe on topic 'orders\.eu'"):
            await orders.subscribe(GroupSpec(topic="orders.eu", name="g"))
        with pytest.raises(Forbidden):
            await orders.delete_topic("orders")
        with pytest.raises(Forbidden):
            await payments.topic_info("secret")
        sub = await payments.subscribe(GroupSpec(topic="orders.eu", name="billing"))
        msg = await sub.next(timeout=5)
        assert msg.body == b"o1"
        await msg.ack()
        visible = {t.name for t in await orders.list_topics()}
        assert visible == {"orders", "orders.eu", "payments.done"}
        assert await orders.ping() < 1  # a refusal does not cost the connection
    finally:
        for t in (ops, orders, payments):
            await t.close()
    assert "forbidden: user 'orders'" in secure_broker.log()  # denials are logged


async def test_reply_topics_are_private_to_their_owner(broker_plain):
    owner = await _connect(broker_plain.url)
    other = await _connect(broker_plain.url)
    try:
        inbox = await owner.create_reply_topic()
        mine = await owner.subscribe(GroupSpec(topic=inbox, name="replies"))
        with pytest.raises(Forbidden, match="reply topic"):
            await other.subscribe(GroupSpec(topic=inbox, name="steal"))
        with pytest.raises(Forbidden, match="reply topic"):  # no request named it
            await other.publish(inbox, [Outgoing(b"a forged reply")])
        await owner.create_topic(TopicSpec(name="rpc.private"))
        requests = await other.subscribe(GroupSpec(topic="rpc.private", name="svc"))
        await owner.publish("rpc.private", [Outgoing(b"ask", headers={"reply-to": inbox})])
        await requests.next(timeout=5)
        await other.publish(inbox, [Outgoing(b"the reply")])  # the reply to that request
        assert (await mine.next(timeout=5)).body == b"the reply"
    finally:
        await owner.close()
        await other.close()


async def test_only_the_lease_holder_may_settle(broker_plain):
    from tests.server.rawclient import RawClient

    t = await _connect(broker_plain.url)
    await t.create_topic(TopicSpec(name="leases"))
    await t.publish("leases", [Outgoing(b"m")])
    holder = await RawClient.open(broker_plain.url)
    thief = await RawClient.open(broker_plain.url)
    try:
        spec = GroupSpec(topic="leases", name="g")
        holder.send(constants.SUBSCRIBE, 1, m.Subscribe(spec, 10))
        frames = [await holder.next_frame(), await holder.next_frame()]
        deliver = next(decode_body(f) for f in frames if f.type == constants.DELIVER)
        [d] = deliver.deliveries
        _, joined = await thief.request(constants.SUBSCRIBE, 1, m.Subscribe(spec, 10))
        for kind, body in (
            (constants.ACK, m.Ack(joined.sub, [d.partition, d.offset])),
            (constants.REJECT, m.Reject(joined.sub, [(d.partition, d.offset, "x")])),
            (constants.NACK, m.Nack(joined.sub, [(d.partition, d.offset, 0.0, None)])),
            (constants.EXTEND, m.Extend(joined.sub, [(d.partition, d.offset, 60.0)])),
        ):
            _, reply = await thief.request(kind, 2, body)
            assert [e[1] for e in reply.errors] == [LeaseLost.code]
        _, reply = await holder.request(constants.ACK, 3, m.Ack(deliver.sub, [0, d.offset]))
        assert reply.errors == []
    finally:
        holder.close()
        thief.close()
        await t.close()


@pytest.fixture(scope="module")
def broker_plain(tmp_path_factory):
    proc = BrokerProcess(tmp_path_factory.mktemp("plain"), args=["--heartbeat", "1.0"])
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory, certs):
    proc = BrokerProcess(
        tmp_path_factory.mktemp("tls"),
        args=[
            *("--heartbeat", "1.0", "--tls-cert", str(certs["server"])),
            *("--tls-key", str(certs["server.key"]), "--tls-client-ca", str(certs["ca"])),
        ],
    )
    proc.start()
    yield proc
    proc.stop()


async def test_tls_with_client_certificates(tls_broker, certs):
    url = f"tidings+tls://127.0.0.1:{tls_broker.port}"
    client = {"tls_ca": str(certs["ca"]), "tls_cert": str(certs["client"])}
    t = await _connect(url, **client, tls_key=str(certs["client.key"]))
    try:
        await t.create_topic(TopicSpec(name="tls"))
        await t.publish("tls", [Outgoing(b"secret" * 1000)])
        sub = await t.subscribe(GroupSpec(topic="tls", name="g"))
        assert (await sub.next(timeout=5)).body == b"secret" * 1000
    finally:
        await t.close()
    assert "TLS with client certificates required" in tls_broker.log()


async def test_tls_refusals(tls_broker, certs):
    url = f"tidings+tls://127.0.0.1:{tls_broker.port}"
    with pytest.raises(TransportUnavailable, match="TLS"):  # the broker's CA is not trusted
        await _connect(url, tls_ca=str(certs["other-ca"]), connect_timeout=5)
    with pytest.raises((TransportUnavailable, Unauthorized)):  # no client certificate
        await _connect(url, tls_ca=str(certs["ca"]), connect_timeout=5)
    with pytest.raises((TransportUnavailable, Unauthorized)):  # a certificate of another CA
        await _connect(
            url,
            tls_ca=str(certs["ca"]),
            tls_cert=str(certs["stranger"]),
            tls_key=str(certs["stranger.key"]),
            connect_timeout=5,
        )
    with pytest.raises(TransportUnavailable):  # plain TCP to a TLS port
        await _connect(f"tidings://127.0.0.1:{tls_broker.port}", connect_timeout=3)
    ok = await _connect(
        url + f"?tls_ca={certs['ca']}&tls_cert={certs['client']}&tls_key={certs['client.key']}"
    )
    assert await ok.ping() < 1
    await ok.close()


def test_users_file_errors_are_clear(tmp_path):
    from tidings.errors import BadRequest

    bad = tmp_path / "users.toml"
    bad.write_text('[[users]]\nname = "x"\npassword = "plain-text"\n')
    with pytest.raises(BadRequest, match="must be a hash"):
        Authenticator.from_file(str(bad))
    bad.write_text('[[users]]\nname = "x"\n')
    with pytest.raises(BadRequest, match="give a password or a token"):
        Authenticator.from_file(str(bad))
    with pytest.raises(BadRequest, match="cannot read"):
        Authenticator.from_file(str(tmp_path / "missing.toml"))


def test_secrets_are_stored_hashed_and_checked():
    auth = Authenticator.from_file(None)
    assert not auth.enabled
    stored = hash_password("pw")
    assert "pw" not in stored.split("$")[-1] and stored.startswith("scrypt$")
    from tidings.server.auth import User

    auth = Authenticator([User("u", password=stored, publish=("a.*",))])
    assert auth.verify("u", "pw").name == "u"
    assert auth.cached("u", "pw") is not None  # the slow check is done once
    with pytest.raises(Unauthorized):
        auth.verify("u", "nope")
    assert auth.users["u"].may("publish", "a.b") and not auth.users["u"].may("subscribe", "a.b")


async def test_slow_password_checks_do_not_block_the_broker(secure_broker):
    t = await _connect(_url(secure_broker, f"{TOKEN}@"))
    try:
        logins = [
            _connect(_url(secure_broker, f"orders:wrong-{i}@"), connect_timeout=10)
            for i in range(4)
        ]
        pings = [t.ping() for _ in range(20)]
        results = await asyncio.gather(*logins, *pings, return_exceptions=True)
        assert all(isinstance(r, Unauthorized) for r in results[:4])
        assert all(isinstance(r, float) for r in results[4:])
    finally:
        await t.close()
