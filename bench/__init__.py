"""Throughput benchmarks: speed lives here, not in the tests (``make bench`` / ``python -m bench``)."""
