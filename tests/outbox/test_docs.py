"""Every code block of docs/outbox.md runs as written: Python blocks twice (re-runnable), the
SQL blocks on a real PostgreSQL (the DDL makes a table the relay accepts and relays from; the
operations block runs as a superuser would), the shell lines with the CLI."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tidings.outbox import Outbox, Relay

from .conftest import drain

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "outbox.md"
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", DOC.read_text(), re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
SQL = [code for lang, code in BLOCKS if lang == "sql"]
SHELL = [code for lang, code in BLOCKS if lang == "bash"]


def test_the_page_has_its_samples():
    assert len(PYTHON) == 2 and len(SQL) == 2 and len(SHELL) == 1
    assert {lang for lang, _ in BLOCKS} <= {"python", "bash", "sql"}
    assert "max_slot_wal_keep_size" in SQL[1]


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_block_runs(index, capsys):
    for _ in range(2):
        exec(compile(PYTHON[index], f"docs/outbox.md block {index}", "exec"), {})
    out = capsys.readouterr().out
    assert "Traceback" not in out
    if index == 0:
        assert out.count('relayed: {"order":"o-1","total":42} key o-1') == 2
        assert out.count("nothing else: True") == 2
    else:
        assert out.count('invoice event: {"order":"o-1"}') == 2
        assert out.count("invoice rows: ['o-1']") == 2


async def test_the_ddl_makes_a_table_the_relay_uses(pg_url, topic, broker):
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(SQL[0])
    outbox = Outbox(engine)
    with engine.connect() as conn:
        outbox.check_table(conn)
        conn.exec_driver_sql("LISTEN tidings_outbox")
        conn.commit()
        with engine.begin() as writer:
            msg_id = outbox.publish(writer, topic, {"from": "the docs' DDL"})
        raw = conn.connection.dbapi_connection
        for _ in range(100):  # the notification arrives on its own time: wait for it
            select.select([raw], [], [], 0.1)
            raw.poll()
            if raw.notifies:
                break
        assert [n.channel for n in raw.notifies] == ["tidings_outbox"]  # the trigger fired
    async with Relay(outbox, broker.url).running():
        got = await drain(broker.url, topic, 1)
    assert [m.msg_id for m in got] == [msg_id]
    engine.dispose()


def test_the_operations_sql_runs(pg_url):
    engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")  # ALTER SYSTEM needs it
    with engine.connect() as conn:
        for statement in filter(str.strip, SQL[1].split(";")):
            conn.exec_driver_sql(statement)
        # pg_reload_conf() only signals the server: this backend rereads the file on its own time
        for _ in range(50):
            value = conn.exec_driver_sql("SHOW max_slot_wal_keep_size").scalar()
            if value == "10GB":
                break
            time.sleep(0.1)
        assert value == "10GB"
        conn.exec_driver_sql("ALTER SYSTEM RESET max_slot_wal_keep_size")
        conn.exec_driver_sql("SELECT pg_reload_conf()")
    engine.dispose()


def test_shell_blocks_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    outputs = []
    for line in SHELL[0].strip().splitlines():
        out = subprocess.run(line, shell=True, cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
        assert out.returncode == 0, f"{line}\n{out.stdout}\n{out.stderr}"
        outputs.append(out.stdout)
    assert "is ready" in outputs[0]
    assert (tmp_path / "app.db").exists()
