"""Micro-benchmark of the wire codec: messages per second through encode and decode.

Run: ``python -m tidings.benchmarking.micro.codec [--seconds 1]``. Measures 256-byte
publishes one per frame and in batches of 100, both ways (the client's encode, the broker's
decode), and DELIVER frames of 100 (the broker's encode, the client's decode).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import msgspec

from ...model import Delivery
from ...protocol import FrameDecoder, constants, decode_body, encode_frame

BODY = b"x" * 256


def _rate(fn: Callable[[], object], messages_per_call: int, seconds: float) -> float:
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            fn()
        calls += 50
    return calls * messages_per_call / elapsed


Case = tuple[Callable[[], object], int]  # what to time, and the messages one call handles


def publish_encode(batch: int) -> Case:
    rows: list[tuple[Any, ...]] = [(BODY, f"k{i}", {}, f"producer-{i}") for i in range(batch)]

    def run() -> None:
        out = bytearray()
        if batch == 1:
            for i in range(100):
                encode_frame(out, constants.PUBLISH, i + 1, ("orders", rows))
        else:
            encode_frame(out, constants.PUBLISH, 1, ("orders", rows))

    return run, 100 if batch == 1 else batch


def publish_decode(batch: int) -> Case:
    out = bytearray()
    rows: list[tuple[Any, ...]] = [(BODY, f"k{i}", {}, f"producer-{i}") for i in range(batch)]
    for i in range(100 if batch == 1 else 1):
        encode_frame(out, constants.PUBLISH, i + 1, ("orders", rows))
    data = bytes(out)

    def run() -> None:
        for frame in FrameDecoder(constants.CLIENT_TO_SERVER).feed(data):
            decode_body(frame)

    return run, 100 if batch == 1 else batch


def deliver_both(batch: int) -> tuple[Case, Case]:
    deliveries = [
        Delivery("orders", "billing", 0, i, f"id{i}", None, {}, BODY, 1.7e9, 1, None, 1.7e9)
        for i in range(batch)
    ]
    astuple = msgspec.structs.astuple

    def encode() -> bytes:
        out = bytearray()
        encode_frame(out, constants.DELIVER, 0, (1, [astuple(d) for d in deliveries]))
        return bytes(out)

    data = encode()

    def decode() -> None:
        for frame in FrameDecoder(constants.SERVER_TO_CLIENT).feed(data):
            decode_body(frame)

    return (encode, batch), (decode, batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()
    cases = {
        "publish encode, 1 msg/frame": publish_encode(1),
        "publish decode, 1 msg/frame": publish_decode(1),
        "publish encode, 100 msgs/frame": publish_encode(100),
        "publish decode, 100 msgs/frame": publish_decode(100),
    }
    (enc, n), (dec, m) = deliver_both(100)
    cases["deliver encode, 100 msgs/frame"] = (enc, n)
    cases["deliver decode, 100 msgs/frame"] = (dec, m)
    print(f"256-byte messages, {args.seconds:.1f}s per case")
    for name, (fn, per_call) in cases.items():
        print(f"  {name:34s} {_rate(fn, per_call, args.seconds):>14,.0f} msg/s")


if __name__ == "__main__":
    main()
