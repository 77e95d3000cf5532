"""``tidings dlq replay``: move a whole dead-letter topic back to its origin topic.

Replay reads a dead-letter topic through the group ``tidings-replay``, republishes each
message to the topic named in its ``tidings-dlq-topic`` header (without the ``tidings-dlq-*``
headers, with the message id ``replay-<dead letter id>``) and acknowledges it only after the
broker confirmed the republish, so a replay that is interrupted resumes where it stopped,
loses nothing and republishes nothing twice (within the origin's dedup window); dead letters
a redrive or purge already took care of are skipped. Every group of the origin topic
receives a replayed message; ``tidings dlq redrive`` sends a group's dead letters back to
that group only.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import headers as h
from ..client import Client, SyncMessage
from ..errors import BadRequest, NotFound
from ..model import Outgoing, TopicInfo
from .connection import client_for
from .dlq import REPLAY_GROUP, _replay_lag, app
from .output import JsonOpt, UrlOpt, console, err_console, show, state


def replay_message(msg: SyncMessage) -> tuple[str, Outgoing]:
    """Where a dead letter goes back to, and the message to publish there."""
    origin = msg.headers.get(h.DLQ_TOPIC)
    if not origin:
        raise BadRequest(
            f"message {msg.id} at offset {msg.offset} has no {h.DLQ_TOPIC} header: "
            "it is not a dead letter, so it has no origin to go back to"
        )
    headers = {k: v for k, v in msg.headers.items() if not k.startswith("tidings-dlq-")}
    headers["tidings-replayed-from"] = msg.topic
    # A stable id per dead letter: a replay retried after a crash is dropped by the broker.
    return origin, Outgoing(msg.body, msg.key, headers, f"replay-{msg.id}")


GUARD_LIMIT = 10_000  # dead letters listed per group to know which still wait


class _StillWaiting:
    """Which dead letters a replay may send: not those a redrive or purge already took care
    of (they stay in the topic). Dead letters that arrive while the replay runs sit past the
    offsets the topic had when it started, so they are replayed without asking."""

    def __init__(self, client: Client, info: TopicInfo) -> None:
        self.client = client
        self.end = {p.partition: p.next_offset for p in info.partitions}  # before any listing
        self.ids: dict[tuple[str, str], set[str] | None] = {}

    def __call__(self, msg: SyncMessage) -> bool:
        hd = msg.headers
        origin, group = hd.get(h.DLQ_TOPIC), hd.get(h.DLQ_GROUP)
        if not origin or not group or msg.offset >= self.end.get(msg.partition, 0):
            return True
        key = (origin, group)
        if key not in self.ids:
            try:
                letters = self.client.dead_letters(origin, group, limit=GUARD_LIMIT)
            except NotFound:  # the group is gone: nothing to ask
                letters = None
            full = letters is None or len(letters) >= GUARD_LIMIT
            self.ids[key] = None if full or letters is None else {d.id for d in letters}
        waiting = self.ids[key]
        return waiting is None or (hd.get(h.DLQ_ID) or msg.id) in waiting


@app.command(
    "replay",
    help="""Move the messages of a dead-letter topic back to their origin topic.

Each message is acknowledged only after its republish is confirmed, so an interrupted replay
resumes where it stopped; its message id is 'replay-<dead letter id>', so a message that was
republished but not yet acknowledged is dropped by the broker the second time. The replayed
message reaches every group of the origin topic; to send a group's dead letters back to that
group alone, use 'tidings dlq redrive TOPIC --group G'. Dead letters already redriven or
purged are skipped (counted as skipped).

Example:

\b
    tidings dlq replay order.refunded.payment.dlq --limit 100
""",
)
def replay(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="Dead-letter topic to replay.")],
    limit: Annotated[int | None, typer.Option(min=1, help="Replay at most this many.")] = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    st = state(ctx, url, as_json)
    replayed = already = skipped = 0
    targets: dict[str, int] = {}
    with client_for(st) as client:
        info = client.topic_info(topic)
        still_waiting = _StillWaiting(client, info)
        total = _replay_lag(client, topic, info.messages)
        if limit is not None:
            total = min(total, limit)
        sub = client.subscribe(
            topic, REPLAY_GROUP, start="earliest", prefetch=100, lease=60, max_deliveries=0
        )
        progress = Progress(
            TextColumn("replaying {task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=err_console(), disable=st.json,
        )  # fmt: skip
        try:
            with progress:
                task = progress.add_task(topic, total=total)
                while (limit is None or replayed + already < limit) and total > 0:
                    msg = sub.next(timeout=1.0)
                    if msg is None:
                        break
                    if not still_waiting(msg):  # redriven or purged: it went back already
                        msg.ack()
                        skipped += 1
                        progress.advance(task)
                        continue
                    origin, outgoing = replay_message(msg)
                    [receipt] = client.publish_many(origin, [outgoing])
                    msg.ack()  # only now: the republish is confirmed (or was, earlier)
                    if receipt.duplicate:
                        already += 1
                    else:
                        replayed += 1
                        targets[origin] = targets.get(origin, 0) + 1
                    progress.advance(task)
        finally:
            sub.close()
    data = {"topic": topic, "replayed": replayed, "already_replayed": already, "to": targets}
    if skipped:
        data["skipped_redriven_or_purged"] = skipped
    if st.json:
        show(st, data, None)
        return
    out = console()
    dest = ", ".join(f"{n} to {t}" for t, n in targets.items()) or "nothing"
    out.print(f"replayed {replayed} message(s): {dest}")
    if already:
        out.print(f"{already} message(s) had been replayed before (dropped as duplicates)")
    if skipped:
        out.print(f"{skipped} dead letter(s) skipped: they were redriven or purged already")
