"""Tests of the transports against their real engines."""
