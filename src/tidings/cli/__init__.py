"""The ``tidings`` command line: broker, publish, subscribe, admin, stats, demo and services.

The app is assembled in :mod:`tidings.cli.main`; each command group has its own module.
"""
