"""Micro-benchmarks of single parts, run as modules (figures in docs/performance.md and
docs/design/storage.md):

- ``python -m tidings.benchmarking.micro.codec``: the wire codec, messages per second through
  encode and decode.
- ``python -m tidings.benchmarking.micro.storage --runs 3``: DiskStore against a SQLite
  prototype of the same Store interface, with MemoryStore as the ceiling.
"""
