#!/usr/bin/env bash
# Install what the side-by-side benchmark needs, when missing:
#   servers from Debian's packages: rabbitmq-server, nats-server, redis-server
#   Python clients from PyPI: aio-pika, nats-py, redis (and py-spy for profiling)
# Idempotent: nothing is installed twice; apt-get update runs at most once.
# Usage: bash scripts/bench-setup.sh        (as root, or with sudo available)
# The Python clients go into the interpreter that runs `tidings` (its script's #! line), so a
# venv's `tidings bench` finds them; PYTHON=/path/to/python overrides it.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

missing=()
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)

if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]} (apt)"
    $SUDO apt-get update -qq
    # the packages' own services are not started: the benchmark starts its own servers
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
else
    echo "servers: rabbitmq-server, nats-server and redis-server are installed"
fi

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ] && command -v tidings >/dev/null 2>&1; then
    PYTHON=$(head -n 1 "$(command -v tidings)" | sed -n 's/^#!//p')
fi
PYTHON=${PYTHON:-python3}

pip_missing=()
"$PYTHON" -c "import aio_pika" 2>/dev/null || pip_missing+=(aio-pika)
"$PYTHON" -c "import nats" 2>/dev/null || pip_missing+=(nats-py)
"$PYTHON" -c "import redis" 2>/dev/null || pip_missing+=(redis)
command -v py-spy >/dev/null 2>&1 || pip_missing+=(py-spy)
if [ "${#pip_missing[@]}" -gt 0 ]; then
    echo "installing ${pip_missing[*]} (pip)"
    "$PYTHON" -m pip install -q "${pip_missing[@]}"
else
    echo "clients: aio-pika, nats-py, redis and py-spy are installed"
fi
