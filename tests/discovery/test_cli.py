"""``tidings services`` (list, show, graph, register) against a real broker and services."""

from __future__ import annotations

import asyncio
import json

import tidings
from tidings.cli.main import main

from .test_registry_broker import wait_for


async def cli(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(args))
    return code, capsys.readouterr().out


async def test_list_show_graph_and_register(broker, spawn, capsys):
    url = broker.url
    for name in ("orders", "inventory", "pricing"):
        spawn(name, url, "--heartbeat", "0.5")
    shop = tidings.Service("shop", url, heartbeat=0.5)
    async with shop.running():

        async def registered():
            _code, out = await cli(capsys, "services", "--json", "--url", url)
            return len(json.loads(out)) == 4

        await wait_for(registered, timeout=60)
        for sku in ("a", "b", "broken"):
            await shop.publish("orders.placed", {"sku": sku})

        async def counted():
            _code, out = await cli(capsys, "services", "graph", "--json", "--url", url)
            edges = {(e["caller"], e["callee"], e["topic"]): e for e in json.loads(out)["edges"]}
            want = [("shop", "orders", "orders.placed"), ("orders", "pricing", "pricing.quote")]
            if all(edges.get(k, {}).get("calls") == 3 for k in want) and edges.get(
                ("shop", "inventory", "orders.placed"), {}
            ).get("errors"):
                return edges
            return None

        edges = await wait_for(counted, timeout=60, every=0.5)
        assert edges[("orders", "pricing", "pricing.quote")]["kind"] == "request"
        assert edges[("orders", "pricing", "pricing.quote")]["errors"] == 0
        broken = edges[("shop", "inventory", "orders.placed")]
        assert broken["kind"] == "event" and broken["errors"] >= 1  # retried: one or more

        code, out = await cli(capsys, "services", "--json", "--url", url)
        assert code == 0
        names = {s["name"] for s in json.loads(out)}
        assert names == {"shop", "orders", "inventory", "pricing"}
        code, out = await cli(capsys, "services", "--url", url)
        assert code == 0 and "pricing" in out and "1.0.0" in out

        code, out = await cli(capsys, "services", "show", "pricing", "--json", "--url", url)
        [inst] = json.loads(out)["instances"]
        [endpoint] = inst["endpoints"]
        assert (endpoint["name"], endpoint["num_requests"]) == ("quote", 3)
        code, out = await cli(capsys, "services", "show", "nobody", "--url", url)
        assert code == 4

        code, out = await cli(capsys, "services", "graph", "--format", "dot", "--url", url)
        assert out.startswith("digraph tidings {")
        assert '"orders" -> "pricing" [label="request pricing.quote' in out
        code, out = await cli(capsys, "services", "graph", "--format", "mermaid", "--url", url)
        assert out.startswith("graph LR")
        assert 'orders["orders"] -->|"request pricing.quote' in out

        code, _ = await cli(
            capsys, "services", "register", "billing", "http://127.0.0.1:9", "--url", url
        )
        assert code == 0
        async with tidings.connect(url) as client:
            [ext] = await client.discover("billing")
            assert ext.url == "http://127.0.0.1:9"
        code, _ = await cli(
            capsys, "services", "deregister", "billing", "http://127.0.0.1:9", "--url", url
        )
        assert code == 0
