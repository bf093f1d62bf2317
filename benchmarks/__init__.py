"""Benchmarks: `make bench` runs `python -m benchmarks.run`; timings live here, never in tests."""
