"""Benchmark harness: measurements, not tests. Run with ``make bench``."""
