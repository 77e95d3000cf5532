"""A real Redis Cluster for tests: three redis-server primaries on loopback, no replicas.

``RedisCluster(dir).start()`` runs three :class:`~tests.helpers.redis_server.RedisServer`
processes with ``--cluster-enabled yes`` (each with its own data dir and nodes.conf), joins
them with ``redis-cli --cluster create`` (16384 slots split three ways) and waits until every
node reports ``cluster_state:ok``. ``url`` names the first node; a client discovers the rest
from it. Stopped by PID like the single server.

Fixture: ``redis_cluster`` (session). Without redis-server / redis-cli it skips, or FAILS when
``$CI`` is set (Debian's redis-server package brings both).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.nats_server import free_port
from tests.helpers.redis_server import RedisServer, require_redis_server

__all__ = ["RedisCluster", "redis_cluster"]


class ClusterNode(RedisServer):
    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.bus_port = free_port()  # named, not port + 10000 (which may be taken or > 65535)

    def args(self) -> list[str]:
        return [
            *super().args(),
            "--cluster-enabled", "yes", "--cluster-port", str(self.bus_port),
            "--cluster-config-file", str(self.data_dir / "nodes.conf"),
            "--cluster-node-timeout", "5000",
        ]  # fmt: skip


class RedisCluster:
    """Three primaries; ``start``/``stop``; ``nodes`` are the servers."""

    def __init__(self, data_dir: str | Path, size: int = 3) -> None:
        self.data_dir = Path(data_dir)
        self.nodes = [ClusterNode(self.data_dir / f"n{i}") for i in range(size)]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def _cli(self, *args: str, port: int | None = None) -> str:
        cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        target = ["-p", str(port)] if port else []
        out = subprocess.run(
            [cli, "-h", "127.0.0.1", *target, *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if out.returncode:
            raise RuntimeError(f"redis-cli {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
        return out.stdout

    def start(self, timeout: float = 30.0) -> RedisCluster:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        self._cli("--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes")
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            while "cluster_state:ok" not in self._cli("cluster", "info", port=node.port):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster did not reach state ok in {timeout}s")
                time.sleep(0.1)
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    require_redis_server()
    if shutil.which("redis-cli") is None and not os.path.exists("/usr/bin/redis-cli"):
        message = "redis-cli not found; install it with: apt-get install -y redis-server"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    tmp = Path(tempfile.mkdtemp(prefix="tidings-redis-cluster-"))
    cluster = RedisCluster(tmp)
    try:
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
