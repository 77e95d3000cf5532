"""A consumer process SIGKILLed while it holds unacknowledged messages on amqp:// loses
nothing: RabbitMQ returns them when the connection dies, another member receives every
message, the ones the dead member held with their delivery count raised."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.helpers.rabbitmq_server import RabbitServer

import tidings

HOLDER = """
import asyncio, sys
import tidings

async def main(url, topic):
    async with tidings.connect(url) as client:
        sub = await client.subscribe(topic, "work", prefetch=10, lease=60)
        held = []
        while len(held) < 10:
            msg = await sub.next(timeout=30)
            if msg is None:
                sys.exit(3)
            held.append(msg)  # never acked
        print("holding", " ".join(m.body.decode() for m in held), flush=True)
        await asyncio.sleep(600)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.timeout(180)
async def test_sigkilled_consumer_holding_messages_loses_nothing(
    rabbitmq_server: RabbitServer,
) -> None:
    url = rabbitmq_server.url
    topic = f"kill.{os.getpid()}.{time.monotonic_ns()}"
    bodies = {f"m{i}" for i in range(40)}
    async with tidings.connect(url) as client:
        await client.create_topic(topic)
        await client.publish_many(topic, [tidings.Outgoing(b.encode()) for b in sorted(bodies)])
        env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}")
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, url, topic],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        try:
            assert holder.stdout is not None
            line = holder.stdout.readline()  # bounded: the holder exits after 30 s idle
            assert line.startswith("holding "), f"the holder said {line!r} ({holder.poll()})"
            held = set(line.split()[1:])
            assert len(held) == 10
            info = await client.group_info(topic, "work")
            assert info.ready == 30  # exact: the other 30 wait in the queue
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait(10)
        sub = await client.subscribe(topic, "work", prefetch=50)
        got: dict[str, int] = {}
        deadline = time.monotonic() + 60
        while len(got) < len(bodies) and time.monotonic() < deadline:
            msg = await sub.next(timeout=10)
            if msg is None:
                break
            got[msg.body.decode()] = msg.delivery_count
            await msg.ack()
        assert set(got) == bodies, f"lost: {sorted(bodies - set(got))}"
        assert {b for b, count in got.items() if count == 2} == held
        assert all(got[b] == 1 for b in bodies - held)
        await sub.close()
