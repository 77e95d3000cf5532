"""One sample payload for every frame type (shared by the codec tests and the fuzzer)."""

from __future__ import annotations

from tidings.model import DeadLetter, GroupInfo, GroupSpec, PartitionInfo, TopicInfo, TopicSpec
from tidings.protocol import constants as c
from tidings.protocol import messages as m
from tidings.trace import Trace, TraceEvent

TRACED = TraceEvent(
    seq=42, time=1.7e9, event="acked", topic="orders", partition=1, offset=5, id="m5",
    group="billing", member="m-1", deliveries=2,
)  # fmt: skip

TOPIC = TopicSpec(name="orders", partitions=3, retention="work-queue", max_age=3600.0)
GROUP = GroupSpec(
    topic="orders", name="billing", mode="ordered", lease=5.0, dead_letter_topic="orders.dead"
)
R = c.REPLY_BIT

SAMPLES: dict[int, object] = {
    c.HELLO: m.Hello(magic=c.MAGIC, min_version=1, max_version=1, client="app", token="t"),
    c.WELCOME: m.Welcome(
        version=1,
        server="tidings/0.1.0",
        connection_id="c1",
        heartbeat=5.0,
        max_frame_size=1 << 24,
        max_message_size=1 << 20,
        capabilities=["ttl", "delay"],
    ),
    c.ERROR: m.Error(code=420, message="topic 'x' not found"),
    c.GOODBYE: m.Goodbye(reason="shutting down"),
    c.HEARTBEAT: m.Empty(),
    c.PING: m.Ping(7),
    c.PING | R: m.Pong(7, 1.7e9),
    c.STATS: m.Empty(),
    c.STATS | R: m.ServerStats(
        version="0.1.0",
        uptime=1.5,
        connections=2,
        subscriptions=1,
        write_buffer_bytes=0,
        max_write_buffer_bytes=100,
        paused_connections=0,
        frames_in=10,
        frames_out=12,
    ),
    c.CREATE_TOPIC: m.CreateTopic(TOPIC, True),
    c.CREATE_TOPIC | R: m.TopicReply(TOPIC),
    c.DELETE_TOPIC: m.TopicName("orders"),
    c.DELETE_TOPIC | R: m.Empty(),
    c.LIST_TOPICS: m.Empty(),
    c.LIST_TOPICS | R: m.TopicList([TOPIC, TopicSpec(name="b")]),
    c.TOPIC_INFO: m.TopicName("orders"),
    c.TOPIC_INFO | R: TopicInfo(
        name="orders",
        spec=TOPIC,
        messages=3,
        partitions=[PartitionInfo(partition=0, first_offset=0, next_offset=3)],
        groups=[GroupInfo(topic="orders", name="billing", mode="shared", ready=3)],
    ),
    c.CREATE_REPLY_TOPIC: m.CreateReplyTopic("_reply.0123456789ab.cafe"),
    c.CREATE_REPLY_TOPIC | R: m.TopicName("_reply.0123456789ab.cafe"),
    c.PUBLISH: m.Publish(
        "orders",
        [
            m.WireOutgoing(b"\x00body", "k", {"reply-to": "_reply.ab.cd"}, "id-1", 10.0, 0.5),
            m.WireOutgoing(b""),
        ],
    ),
    c.PUBLISH | R: m.PublishReply([(0, 1, "m1", False), (2, 9, "m2", True)]),
    c.SUBSCRIBE: m.Subscribe(GROUP, 100),
    c.SUBSCRIBE | R: m.Subscribed(3, "member-1", GROUP),
    c.UNSUBSCRIBE: m.Unsubscribe(3, [0, 7, 1, 9]),
    c.UNSUBSCRIBE | R: m.Empty(),
    c.ACK: m.Ack(3, [0, 1, 2, 9]),
    c.ACK | R: m.SettleReply([(1, 430, "lease lost")]),
    c.NACK: m.Nack(3, [(0, 1, 2.5, "boom"), (0, 2, 0.0, None)]),
    c.NACK | R: m.SettleReply(),
    c.EXTEND: m.Extend(3, [(0, 1, 30.0)]),
    c.EXTEND | R: m.SettleReply(),
    c.REJECT: m.Reject(3, [(0, 1, "poison")]),
    c.REJECT | R: m.SettleReply(),
    c.CREDIT: m.Credit(3, 50),
    c.GROUP_INFO: m.GroupRef("orders", "billing"),
    c.GROUP_INFO | R: GroupInfo(topic="orders", name="billing", mode="ordered", spec=GROUP),
    c.DELETE_GROUP: m.GroupRef("orders", "billing"),
    c.DELETE_GROUP | R: m.Empty(),
    c.RESET_GROUP: m.ResetGroup("orders", "billing", "time", 1.7e9),
    c.RESET_GROUP | R: m.Empty(),
    c.LIST_GROUPS: m.TopicName("orders"),
    c.LIST_GROUPS | R: m.GroupList([GROUP]),
    c.DEAD_LETTERS: m.DeadLettersOf("orders", "billing", 20),
    c.DEAD_LETTERS | R: m.DeadLetterList(
        [
            DeadLetter(
                id="m5",
                msg_id="refund-5",
                key="k",
                headers={"h": "v"},
                body=b"x",
                reason="max-deliveries",
                deliveries=3,
                error="ValueError: no",
                dead_lettered_at=1.7e9,
                partition=1,
                offset=5,
            )
        ]
    ),
    c.REDRIVE: m.RedriveOf("orders", "billing", ["m5"], None),
    c.REDRIVE | R: m.MessageIds(["m5"]),
    c.DISCARD_DEAD_LETTERS: m.RedriveOf("orders", "billing", None, 10),
    c.DISCARD_DEAD_LETTERS | R: m.MessageIds([]),
    c.TRACE: m.TraceQuery("topic", "orders", 41, 100),
    c.TRACE | R: Trace(events=[TRACED], last_seq=42),
    c.DELIVER: m.Deliver(
        3,
        [
            m.WireDelivery(
                "orders", "billing", 1, 5, "m5", "k", {"h": "v"}, b"x", 1.7e9, 2, "p", 1.7e9
            ),
            m.WireDelivery("orders", "billing", 1, 6, "m6", None, {}, b"", 1.7e9, 1),
        ],
    ),
    c.SUB_CLOSED: m.SubClosed(3, 470, "member removed"),
}
