"""Every code block of docs/operations.md runs as written: the broker command lines parse,
the users-file entry loads, the YAML parses, every ``tidings_*`` metric the page names is in
a real scrape, the curl session and the Python sample run against a real broker (the page's
127.0.0.1:7421 replaced by the test broker's HTTP address); the dead-letter section's Python
sample, CLI and curl lines run against it with ``$TIDINGS_URL`` set, and say what they should;
the live-updates sample reads three events from the broker's stream."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import yaml

import tidings
from tidings.server.auth import Authenticator, hash_token
from tidings.server.config import config_from

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operations.md"
TEXT = DOC.read_text()
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", TEXT, re.S)


def blocks(lang: str) -> list[str]:
    return [code for kind, code in BLOCKS if kind == lang]


def test_the_page_has_its_samples():
    assert {kind for kind, _ in BLOCKS} <= {"bash", "yaml", "toml", "python"}
    assert blocks("bash") and blocks("python") and len(blocks("yaml")) == 2


def test_broker_command_lines_parse():
    lines = [line for line in blocks("bash")[0].splitlines() if line.strip()]
    assert lines
    for line in lines:
        argv = shlex.split(line.split("#")[0])
        assert argv[:2] == ["tidings", "broker"], line
        config_from(argv[2:], {})


def test_the_users_entry_loads(tmp_path):
    (entry,) = blocks("toml")
    data = tomllib.loads(entry.replace("sha256$...", hash_token("t")))
    path = tmp_path / "users.toml"
    path.write_text(entry.replace("sha256$...", hash_token("t")))
    user = Authenticator.from_file(str(path)).users[data["users"][0]["name"]]
    assert user.monitor and not (user.publish or user.subscribe or user.admin)


async def test_every_metric_named_is_scraped(open_broker):
    async with tidings.connect(open_broker.url) as client:
        await client.create_topic("docs.metrics", exist_ok=True)
        sub = await client.subscribe("docs.metrics", group="g")
        await sub.close()
    scrape = await asyncio.to_thread(lambda: httpx.get(open_broker.base + "/metrics").text)
    exposed = set(re.findall(r"^(tidings_\w+)", scrape, re.M))
    exposed |= {re.sub(r"_(bucket|count|sum)$", "", name) for name in exposed}
    named = set(re.findall(r"\b(tidings_[a-z_]+)", TEXT)) - {"tidings_"}
    assert named, "the page names metrics"
    assert named <= exposed, named - exposed
    for code in blocks("yaml"):
        yaml.safe_load(code)


def test_the_curl_session_and_the_python_sample_run(open_broker, tmp_path):
    address = open_broker.base.removeprefix("http://")
    session = blocks("bash")[1]
    for _ in range(2):  # re-runnable
        for line in session.strip().splitlines():
            line = line.replace("127.0.0.1:7421", address)
            out = subprocess.run(
                line, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=60
            )
            assert out.returncode == 0, f"{line}\n{out.stdout}\n{out.stderr}"
            assert '"error"' not in out.stdout, f"{line}\n{out.stdout}"
    os.environ["TIDINGS_HTTP_URL"] = open_broker.base
    try:
        for code in blocks("python")[:1]:  # the httpx sample ([1] is the dead-letter one)
            for _ in range(2):
                exec(compile(code, "docs/operations.md", "exec"), {})
    finally:
        del os.environ["TIDINGS_HTTP_URL"]


def test_the_dead_letter_section_runs(open_broker, tmp_path, monkeypatch):
    address = open_broker.base.removeprefix("http://")
    sample, session = blocks("python")[1], blocks("bash")[2]
    assert "client.dead_letters(" in sample and "tidings dlq redrive" in session
    monkeypatch.setenv("TIDINGS_URL", open_broker.url)
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
    }
    for _ in range(2):  # re-runnable
        exec(compile(sample, "docs/operations.md", "exec"), {})
        printed = {}
        for line in session.strip().splitlines():
            line = line.replace("127.0.0.1:7421", address)
            out = subprocess.run(
                line, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env
            )
            assert out.returncode == 0, f"{line}\n{out.stdout}\n{out.stderr}"
            assert '"error"' not in out.stdout, f"{line}\n{out.stdout}"
            printed[line.split("#")[0].strip()] = out.stdout
        listed, redrove, after = list(printed.values())[:3]
        assert "card declined" in listed and "rejected" in listed
        assert "redrove 1 dead letter(s) to group 'billing'" in redrove
        assert after.strip() == "[]"


def test_the_live_updates_sample_reads_three_events(open_broker, capsys, monkeypatch):
    sample = blocks("python")[2]
    assert "/api/v1/events" in sample
    monkeypatch.setenv("TIDINGS_HTTP_URL", open_broker.base)
    exec(compile(sample, "docs/operations.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(len(line.split()) == 3 for line in lines), lines
