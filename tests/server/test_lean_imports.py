"""The broker's process imports only what serving needs: not the client, the service
framework, SQLAlchemy, pydantic or the CLI (they cost start-up time and idle memory)."""

from __future__ import annotations

import subprocess
import sys


def test_the_broker_entry_point_leaves_optional_parts_unloaded():
    code = (
        "import sys, tidings.server.main\n"
        "heavy = ('tidings.client', 'tidings.service', 'tidings.cli', 'sqlalchemy', "
        "'pydantic', 'typer', 'rich', 'importlib.metadata', 'starlette', 'uvicorn', "
        "'prometheus_client', 'tidings.server.management')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_lazy_names_still_load_on_use():
    code = "import tidings; print(tidings.connect.__module__, tidings.Service.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["tidings.client.asyncclient", "Service"]


def test_the_service_framework_loads_sqlalchemy_only_for_an_idempotency_store():
    code = (
        "import sys, tidings\n"
        "svc = tidings.Service('lean', url='memory://lean')\n"
        "print('sqlalchemy' in sys.modules)\n"
        "from tidings.service import IdempotencyStore\n"
        "IdempotencyStore('sqlite://')\n"
        "print('sqlalchemy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
