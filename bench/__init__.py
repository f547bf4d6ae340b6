"""Benchmarks of the gateway: `python -m bench` (or `make bench`); see docs/benchmarks.md."""
