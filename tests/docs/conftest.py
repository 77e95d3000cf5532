"""Fixtures of the docs runner: real NATS servers for the pages that need them."""

from tests.helpers.nats_server import *  # noqa: F403 - nats_server, nats_cluster
