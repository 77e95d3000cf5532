"""``tidings bench mqtt``: MQTT publish throughput and end-to-end latency through paho, on the
tidings broker's ``--mqtt`` port and on Debian's mosquitto, side by side in one run.

Both brokers are child processes on free loopback ports: tidings with its defaults (a data
directory, ``--fsync batch``: a QoS 1 PUBACK follows the fsync), mosquitto with a config
file the run writes (``persistence false``, its default, so no fsync; unbounded queues, 100
messages in flight per client as tidings' receive maximum; ``set_tcp_nodelay true`` as
tidings' sockets). The same paho code drives both, in this process, with TCP_NODELAY set on
its sockets (paho leaves Nagle's algorithm on, which adds 40 ms delayed-ACK stalls to
one-at-a-time latency on either broker):

1. **Throughput** per QoS (0, 1): one subscriber on ``T/#`` at that QoS, one publisher sending
   N messages of ``--size`` bytes as fast as paho takes them (at most 100 QoS 1 messages in
   flight); messages/s from the first publish to the last message the subscriber received,
   and for QoS 1 the publish rate to the last PUBACK.
2. **Latency** per QoS: one message at a time, the next once the previous arrived;
   publish-to-receipt p50/p99.

3. **Memory per idle connection**: the broker's resident memory before and after M
   connections that sent CONNECT (keep-alive 0) and got their CONNACK, divided by M.

Each figure is the median of ``--repeat`` runs, printed with the tidings/mosquitto ratio.
Options: ``--quick``, ``--smoke`` (tiny counts, for the test suite), ``--repeat N``,
``--size BYTES``, ``--json``. Without a ``mosquitto`` executable the run says so and
measures tidings alone. Every wait has a deadline.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .procs import ServerProcess, free_port, wait_until
from .stats import median, percentile

SIZES = {
    "smoke": {"messages": 300, "latency": 20, "repeat": 1, "idle": 20},
    "quick": {"messages": 5_000, "latency": 200, "repeat": 3, "idle": 300},
    "full": {"messages": 20_000, "latency": 1_000, "repeat": 3, "idle": 1_000},
}
INFLIGHT = 100  # QoS 1 messages a publisher has unacknowledged at most (both brokers)
STALL = 10.0  # seconds without a new message before a throughput phase gives up
MOSQUITTO_CONF = """listener {port} 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
max_inflight_messages 100
log_dest file {log}
set_tcp_nodelay true
"""


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )


def start_tidings(workdir: Path) -> tuple[ServerProcess, int]:
    port, mqtt = free_port(), free_port()
    argv = [sys.executable, "-m", "tidings.server", "--host", "127.0.0.1", "--port", str(port),
            "--data", str(workdir / "tidings"), "--http", "off",
            "--mqtt", f"127.0.0.1:{mqtt}", "--log-level", "WARNING"]  # fmt: skip
    proc = ServerProcess(argv, workdir / "tidings.log").start()
    wait_until(lambda: proc.port_ready("the tidings broker", mqtt), 30,
               "the tidings broker's MQTT port")  # fmt: skip
    return proc, mqtt


def start_mosquitto(workdir: Path, binary: str) -> tuple[ServerProcess, int]:
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(MOSQUITTO_CONF.format(port=port, log=workdir / "mosquitto-own.log"))
    proc = ServerProcess([binary, "-c", str(conf)], workdir / "mosquitto.log").start()
    wait_until(lambda: proc.port_ready("mosquitto", port), 30, "mosquitto start")
    return proc, port


class Paho:
    """A paho client on its own network thread; ``on_message`` gets (topic, payload, now)."""

    def __init__(self, port: int, name: str, on_message: Callable[[bytes, float], None] | None):
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=paho.MQTTv311)
        self.c.max_inflight_messages_set(INFLIGHT)
        self.c.max_queued_messages_set(0)
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.c.on_connect = lambda *a: self.connected.set()
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        if on_message is not None:
            self.c.on_message = lambda c, u, msg: on_message(
                msg.payload,  # type: ignore[arg-type]  # paho: bytes | bytearray; it reads bytes
                time.perf_counter(),
            )
        self.c.connect("127.0.0.1", port, keepalive=60)
        sock = self.c.socket()  # paho leaves Nagle on: one-at-a-time latency would measure it
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.c.loop_start()
        if not self.connected.wait(10):
            raise TimeoutError(f"paho client {name} got no CONNACK within 10s")

    def subscribe(self, flt: str, qos: int) -> None:
        self.c.subscribe(flt, qos)
        if not self.subscribed.wait(10):
            raise TimeoutError(f"no SUBACK for {flt} within 10s")

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def throughput(port: int, qos: int, n: int, size: int, tag: str) -> dict[str, float]:
    """Messages/s from the first publish to the last receipt (and to the last PUBACK)."""
    got = [0]
    last = [0.0]
    done = threading.Event()

    def received(payload: bytes, now: float) -> None:
        got[0] += 1
        last[0] = now
        if got[0] >= n:
            done.set()

    topic = f"bench{tag}"
    sub = Paho(port, f"sub{tag}", received)
    pub = Paho(port, f"pub{tag}", None)
    try:
        sub.subscribe(f"{topic}/#", qos)
        body = b"x" * size
        t0 = time.perf_counter()
        infos = [pub.c.publish(f"{topic}/m", body, qos=qos) for _ in range(n)]
        seen, since = 0, time.monotonic()
        while not done.wait(0.1):  # ends when all arrived, or nothing new for STALL seconds
            if got[0] != seen:
                seen, since = got[0], time.monotonic()
            elif time.monotonic() - since > STALL:
                break
        acked = t0
        if qos:
            for info in infos:
                info.wait_for_publish(STALL)
            acked = time.perf_counter()
        elapsed = (last[0] - t0) if got[0] else float("nan")
        return {
            "received": float(got[0]),
            "msgs_per_s": got[0] / elapsed if got[0] else 0.0,
            "acked_per_s": n / (acked - t0) if qos and acked > t0 else float("nan"),
        }
    finally:
        pub.close()
        sub.close()


def latency(port: int, qos: int, n: int, size: int, tag: str) -> dict[str, float]:
    """Publish-to-receipt seconds of ``n`` messages sent one at a time: p50/p99 in ms."""
    arrived = threading.Event()
    times: list[float] = []
    sent = [0.0]

    def received(payload: bytes, now: float) -> None:
        times.append(now - sent[0])
        arrived.set()

    topic = f"lat{tag}"
    sub = Paho(port, f"lsub{tag}", received)
    pub = Paho(port, f"lpub{tag}", None)
    try:
        sub.subscribe(f"{topic}/#", qos)
        body = b"x" * size
        for _ in range(n):
            arrived.clear()
            sent[0] = time.perf_counter()
            pub.c.publish(f"{topic}/m", body, qos=qos)
            if not arrived.wait(10):
                raise TimeoutError(f"a QoS {qos} message did not arrive within 10s")
        ordered = sorted(times)
        return {"p50_ms": percentile(ordered, 50) * 1e3, "p99_ms": percentile(ordered, 99) * 1e3}
    finally:
        pub.close()
        sub.close()


def _connect_packet(client_id: str) -> bytes:
    """An MQTT 3.1.1 CONNECT: clean session, keep-alive 0 (the connection may stay idle)."""
    name = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x00" + len(name).to_bytes(2, "big") + name
    return bytes([0x10, len(body)]) + body


def idle_memory(proc: ServerProcess, port: int, n: int, tag: str) -> dict[str, float]:
    """Resident bytes per idle MQTT connection: RSS before and after ``n`` connected ones."""
    time.sleep(0.5)
    before = proc.rss_bytes()
    socks: list[socket.socket] = []
    try:
        for i in range(n):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(sock)
            sock.sendall(_connect_packet(f"idle{tag}-{i}"))
        for sock in socks:  # every CONNACK: 0x20 0x02 flags code
            got = b""
            while len(got) < 4:
                chunk = sock.recv(4 - len(got))
                if not chunk:
                    raise ConnectionError("the broker closed an idle connection")
                got += chunk
            if got[0] != 0x20 or got[3] != 0:
                raise ConnectionError(f"CONNACK refused an idle connection: {got.hex()}")
        time.sleep(0.5)
        after = proc.rss_bytes()
    finally:
        for sock in socks:
            sock.close()
    return {"connections": float(n), "bytes_per_connection": (after - before) / n}


def measure(
    proc: ServerProcess, port: int, sz: dict[str, int], size: int, repeat: int, name: str
) -> dict[str, Any]:
    """The medians over ``repeat`` runs of each figure, per QoS; memory per idle connection."""
    out: dict[str, Any] = {"idle": idle_memory(proc, port, sz["idle"], name)}
    for qos in (0, 1):
        runs: list[dict[str, float]] = []
        for r in range(repeat):
            tag = f"-{name}-q{qos}-r{r}"
            row = throughput(port, qos, sz["messages"], size, tag)
            row.update(latency(port, qos, sz["latency"], size, tag))
            runs.append(row)
        out[f"qos{qos}"] = {k: median([run[k] for run in runs]) for k in runs[0]}
        out[f"qos{qos}"]["runs"] = len(runs)
    return out


def run(size_name: str, repeat: int, size: int) -> dict[str, Any]:
    import paho.mqtt

    sz = SIZES[size_name]
    res: dict[str, Any] = {"size": size_name, "messages": sz["messages"],
                           "latency_messages": sz["latency"], "bytes": size, "repeat": repeat,
                           "paho": paho.mqtt.__version__}  # fmt: skip
    binary = mosquitto_path()
    with tempfile.TemporaryDirectory(prefix="tidings-bench-mqtt-") as tmp:
        workdir = Path(tmp)
        proc, port = start_tidings(workdir)
        try:
            res["tidings"] = measure(proc, port, sz, size, repeat, "t")
        finally:
            proc.stop()
        if binary is None:
            res["mosquitto"] = None
            res["note"] = "mosquitto is not installed (apt-get install mosquitto): tidings only"
            return res
        proc, port = start_mosquitto(workdir, binary)
        try:
            res["mosquitto"] = measure(proc, port, sz, size, repeat, "m")
        finally:
            proc.stop()
    return res


def report(res: dict[str, Any]) -> str:
    mosq = res.get("mosquitto")
    lines = [f"tidings bench mqtt ({res['size']}): {res['messages']} messages of "
             f"{res['bytes']} B per throughput run, {res['latency_messages']} one at a time for "
             f"latency, paho {res['paho']}, median of {res['repeat']}"]  # fmt: skip
    if res.get("note"):
        lines.append(res["note"])
    lines.append(f"{'figure':<28}{'tidings':>12}{'mosquitto':>12}{'ratio':>8}")
    for qos in (0, 1):
        figures = [("msgs_per_s", "end-to-end msg/s"), ("p50_ms", "latency p50 ms"),
                   ("p99_ms", "latency p99 ms")]  # fmt: skip
        if qos:
            figures.insert(1, ("acked_per_s", "publish to PUBACK msg/s"))
        for key, label in figures:
            t = res["tidings"][f"qos{qos}"][key]
            m = mosq[f"qos{qos}"][key] if mosq else float("nan")
            ratio = f"{t / m:.2f}" if mosq and m else "-"
            lines.append(f"{f'QoS {qos} {label}':<28}{t:>12.1f}{m:>12.1f}{ratio:>8}")
        lost = [(n, r[f"qos{qos}"]["received"]) for n, r in (("tidings", res["tidings"]),
                                                            ("mosquitto", mosq)) if r]  # fmt: skip
        for name, received in lost:
            if received < res["messages"]:
                lines.append(f"  QoS {qos}: {name} delivered {received:.0f} of {res['messages']}")
    t_idle = res["tidings"]["idle"]["bytes_per_connection"]
    m_idle = mosq["idle"]["bytes_per_connection"] if mosq else float("nan")
    ratio = f"{t_idle / m_idle:.2f}" if mosq and m_idle > 0 else "-"
    label = f"KiB per idle conn (of {res['tidings']['idle']['connections']:.0f})"
    lines.append(f"{label:<28}{t_idle / 1024:>12.1f}{m_idle / 1024:>12.1f}{ratio:>8}")
    lines.append("ratio: tidings / mosquitto (above 1 for msg/s is better, below 1 for latency)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tidings bench mqtt", description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="fewer messages (a minute or two)")
    mode.add_argument("--smoke", action="store_true", help="tiny counts (the test suite)")
    p.add_argument("--repeat", type=int, default=None, help="runs per figure (median taken)")
    p.add_argument("--size", type=int, default=64, help="payload bytes (default 64)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)
    size_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    repeat = SIZES[size_name]["repeat"] if args.repeat is None else args.repeat
    if repeat < 1 or args.size < 1:
        p.error("--repeat and --size must be at least 1")
    res = run(size_name, repeat, args.size)
    print(json.dumps(res, indent=2) if args.json else report(res))
    return 0
