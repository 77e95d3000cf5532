"""A full disk and damaged files, end to end through the server.

A full disk is simulated by failing ``os.pwrite`` with ENOSPC inside an in-process broker
(always), and for real on a tiny tmpfs mount when the tests run as root. Damaged segment
files are made by hand between two runs of a broker process.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from tests.helpers.broker_process import BrokerProcess

from tidings.client import AsyncClient
from tidings.errors import StorageError, StorageFull
from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.server import BrokerServer, ServerConfig
from tidings.transports.tidings import NativeTransport

real_pwrite = os.pwrite


async def _drain(t: NativeTransport, topic: str, group: str, want: int, timeout=10.0) -> list:
    sub = await t.subscribe(GroupSpec(topic=topic, name=group), prefetch=500)
    got: list = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(got) < want and loop.time() < deadline:
        batch = await sub.next_batch(500, timeout=0.5)
        got += batch
        await asyncio.gather(*(m.ack() for m in batch))
    extra = await sub.next_batch(500, timeout=0.3)
    await sub.close()
    return got + extra


@contextlib.asynccontextmanager
async def in_process_broker(data: Path):
    server = BrokerServer(ServerConfig(port=0, data_dir=str(data), heartbeat=1.0))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_a_full_disk_refuses_publishes_and_recovers(tmp_path, monkeypatch):
    confirmed: list[bytes] = []
    async with in_process_broker(tmp_path / "data") as server:
        t = NativeTransport(server.url, timeout=5.0, reconnect=False)
        await t.connect()
        await t.create_topic(TopicSpec(name="t"))
        for i in range(20):
            await t.publish("t", [Outgoing(b"before-%d" % i)])
            confirmed.append(b"before-%d" % i)

        def no_space(fd, data, position):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "pwrite", no_space)
        for i in range(5):
            with pytest.raises(StorageFull, match="free disk space") as exc:
                await t.publish("t", [Outgoing(b"refused-%d" % i)])
            assert exc.value.code == 451
        assert await t.ping() < 1  # the connection and the broker carry on
        monkeypatch.setattr(os, "pwrite", real_pwrite)  # space is back
        for i in range(20):
            await t.publish("t", [Outgoing(b"after-%d" % i)])
            confirmed.append(b"after-%d" % i)
        await t.close()
    async with in_process_broker(tmp_path / "data") as server:  # nothing confirmed was lost
        t = NativeTransport(server.url, timeout=5.0)
        await t.connect()
        got = [m.body for m in await _drain(t, "t", "g", len(confirmed))]
        assert got == confirmed
        await t.close()


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
    )
    return result.returncode == 0


@contextlib.contextmanager
def _tmpfs(tmp_path: Path, size: str):
    mount = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    if not _mount_tmpfs(mount, size):
        pytest.skip("cannot mount a tmpfs here (needs root); the injected-fault test covers it")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def tiny_disk(tmp_path):
    with _tmpfs(tmp_path, "4m") as mount:
        yield mount


@pytest.fixture
def small_disk(tmp_path):
    with _tmpfs(tmp_path, "70m") as mount:
        yield mount


async def test_a_real_full_disk_on_a_tmpfs(tiny_disk):
    filler = tiny_disk / "filler"
    broker = BrokerProcess(
        tiny_disk / "data", args=["--heartbeat", "1.0", "--disk-free-limit", "0"]
    )
    await asyncio.to_thread(broker.start)
    t = NativeTransport(broker.url, timeout=10.0, backoff_max=0.2)
    confirmed: list[bytes] = []
    try:
        await t.connect()
        await t.create_topic(TopicSpec(name="t"))
        filler.write_bytes(b"\0" * (2 << 20))  # leaves the broker well under 2 MiB
        body = b"x" * 32 * 1024
        error: StorageError | None = None
        for i in range(200):
            try:
                await t.publish("t", [Outgoing(body + b"%d" % i)])
            except StorageError as exc:
                error = exc
                break
            confirmed.append(body + b"%d" % i)
        assert isinstance(error, StorageFull), error
        assert "free disk space" in error.message
        assert await t.ping() < 1
        filler.unlink()  # space returns
        published_after = False
        for _ in range(20):  # a failed fsync may need a restart; an append error does not
            try:
                await t.publish("t", [Outgoing(b"after")])
                published_after = True
                break
            except StorageError:
                await asyncio.to_thread(broker.restart, crash=True)
        assert published_after
        confirmed.append(b"after")
        await asyncio.to_thread(broker.restart, crash=True)
        got = [m.body for m in await _drain(t, "t", "g", len(confirmed), timeout=20)]
        assert set(confirmed) <= set(got)
    finally:
        await t.close()
        await asyncio.to_thread(broker.stop)


LIMIT = 50 << 20


async def test_a_burst_cannot_fill_the_disk_past_the_free_limit(small_disk):
    """Issue #12: the limit was sampled every couple of seconds, so a fast burst filled a
    70 MiB disk before the 50 MiB limit tripped. Now the write path counts bytes: four
    publishers each sending 400 KiB batches as fast as they can stop at the limit with
    StorageFull, the disk keeps its 50 MiB, and every acknowledged message survives a kill."""
    broker = BrokerProcess(
        small_disk / "data", args=["--heartbeat", "1.0", "--disk-free-limit", str(LIMIT)]
    )
    await asyncio.to_thread(broker.start)
    client = AsyncClient(broker.url, timeout=20.0, backoff_max=0.2)
    confirmed: list[bytes] = []
    errors: list[Exception] = []
    try:
        await client.connect()
        await client.transport.create_topic(TopicSpec(name="t"))
        body = os.urandom(4096)

        async def burst(p: int) -> None:
            for b in range(200):  # 80 MiB per publisher: far more than the disk holds
                batch = [Outgoing(b"%d-%d-%d|" % (p, b, i) + body) for i in range(100)]
                try:
                    await client.publish_many("t", batch)
                except StorageError as exc:
                    errors.append(exc)
                    return
                confirmed.extend(m.body[:24].split(b"|")[0] for m in batch)

        await asyncio.gather(*(burst(p) for p in range(4)))
        free = shutil.disk_usage(small_disk).free
        assert free >= LIMIT - (1 << 20), f"only {free >> 20} MiB left on the data disk"
        assert len(errors) == 4
        assert all(isinstance(e, StorageFull) for e in errors), errors
        assert "--disk-free-limit of 50 MiB" in str(errors[0])
        assert len(confirmed) > 2000  # about 15 MiB were written before the limit
        await asyncio.to_thread(broker.restart, crash=True)
        got = await _drain(client.transport, "t", "g", len(confirmed), timeout=60)
        assert set(confirmed) <= {m.body.split(b"|")[0] for m in got}
    finally:
        await client.close()
        await asyncio.to_thread(broker.stop)


def _segment(data: Path) -> Path:
    [segment] = sorted(data.glob("topics/*/0/*.log"))
    return segment


def _truncate_mid_record(segment: Path) -> None:
    size = segment.stat().st_size
    os.truncate(segment, size - 20)


def _garbage_tail(segment: Path) -> None:
    with open(segment, "ab") as f:
        f.write(os.urandom(300))


def _flip_last_byte(segment: Path) -> None:
    with open(segment, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 0xFF]))


@pytest.mark.parametrize("crash", [False, True], ids=["after-stop", "after-kill"])
@pytest.mark.parametrize(
    ("damage", "kept"),
    [(_truncate_mid_record, 49), (_garbage_tail, 50), (_flip_last_byte, 49)],
    ids=["truncated", "garbage-tail", "flipped-byte"],
)
async def test_a_damaged_segment_tail_is_reported_truncated_and_the_rest_served(
    tmp_path, damage, kept, crash
):
    data = tmp_path / "data"
    broker = BrokerProcess(data, args=["--heartbeat", "1.0"])
    await asyncio.to_thread(broker.start)
    t = NativeTransport(broker.url, timeout=10.0, backoff_max=0.2)
    try:
        await t.connect()
        await t.create_topic(TopicSpec(name="t"))
        for i in range(50):
            await t.publish("t", [Outgoing(b"m-%02d" % i)])
        await t.close()
        await asyncio.to_thread(broker.kill if crash else broker.stop)
        segment = _segment(data)
        damage(segment)
        await asyncio.to_thread(broker.start)  # it starts on its own damaged data
        log = broker.log()
        assert "truncated damaged tails" in log
        assert f"{segment}:" in log  # file and position
        t = NativeTransport(broker.url, timeout=10.0, backoff_max=0.2)
        await t.connect()
        got = [m.body for m in await _drain(t, "t", "g", kept)]
        assert got == [b"m-%02d" % i for i in range(kept)]
        [receipt] = await t.publish("t", [Outgoing(b"next")])
        assert receipt.offset == kept
    finally:
        await t.close()
        await asyncio.to_thread(broker.stop)
