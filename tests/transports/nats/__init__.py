"""Tests of the nats:// transport against a real nats-server."""
