"""A machine crash can keep a group's acks but lose the records they acked (the records were
delivered while their fsync ran, or fsync=never). Recovery must forget those acks: the lost
offsets are reused by new messages, and the group must receive them."""

from __future__ import annotations

from pathlib import Path

from tidings.broker import Broker
from tidings.model import GroupSpec, TopicSpec
from tidings.storage import DiskStore
from tidings.storage.disk import format as fmt

from .conftest import bodies, drain, join, let_go, msgs

G = GroupSpec(topic="t", name="g")


def _cut_log_to(path: Path, keep: int) -> None:
    """Cut partition 0's only segment after its first ``keep`` records, as a machine crash
    that never wrote the rest back would."""
    [segment] = sorted(Path(path, fmt.TOPICS_DIR, "t", "0").glob("*" + fmt.SEGMENT_SUFFIX))
    data = segment.read_bytes()
    position = fmt.FILE_HEADER.size
    for _ in range(keep):
        position += fmt.RECORD_HEADER.size + fmt.RECORD_HEADER.unpack_from(data, position)[1]
    segment.write_bytes(data[:position])
    for index in segment.parent.glob("*.index"):
        index.unlink()


def _open(path: Path) -> tuple[DiskStore, Broker]:
    store = DiskStore(path)
    broker = Broker(store)
    report = broker.open()
    broker.last_report = report  # type: ignore[attr-defined]
    return store, broker


def _ack_then_lose_the_tail(path: Path, acked: int, keep: int) -> None:
    """Publish m0..m9, ack the first ``acked`` durably, then crash keeping ``keep`` records."""
    store, broker = _open(path)
    broker.create_topic(TopicSpec(name="t"))
    member, inbox = join(broker, G, prefetch=acked)
    broker.publish("t", msgs(*[f"m{i}" for i in range(10)]))
    broker.sync()
    assert len(drain(broker, member, inbox, limit=acked)) == acked
    broker.sync()  # the acks are durable
    let_go(store)
    _cut_log_to(path, keep=keep)  # what a machine crash that lost the rest leaves


def test_acks_of_records_a_crash_took_back_do_not_settle_new_messages(tmp_path: Path) -> None:
    path = tmp_path / "store"
    _ack_then_lose_the_tail(path, acked=10, keep=6)  # all ten acked; the crash kept 0-5

    store, broker = _open(path)
    report = broker.last_report  # type: ignore[attr-defined]
    assert any("acks past offset 6 forgotten" in line for line in report.truncated), report
    receipts = broker.publish("t", msgs("new6", "new7", "new8"))
    assert [r.offset for r in receipts] == [6, 7, 8]  # the lost offsets, reused
    broker.sync()
    _, inbox = join(broker, G, prefetch=100)
    assert bodies(inbox.items) == [b"new6", b"new7", b"new8"]
    assert broker.group_info("t", "g").lag == 3

    # The forgetting is durable: after another crash the old acks do not come back.
    let_go(store)
    store, broker = _open(path)
    _, inbox = join(broker, G, prefetch=100)
    assert bodies(inbox.items) == [b"new6", b"new7", b"new8"]
    store.close()


def test_acks_within_the_recovered_log_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "store"
    _ack_then_lose_the_tail(path, acked=4, keep=8)

    store, broker = _open(path)
    report = broker.last_report  # type: ignore[attr-defined]
    assert not any("forgotten" in line for line in report.truncated)
    _, inbox = join(broker, G, prefetch=100)
    assert bodies(inbox.items) == [b"m4", b"m5", b"m6", b"m7"]
    store.close()
