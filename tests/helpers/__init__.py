"""Helpers shared by the test suites (a real broker process, ...)."""
