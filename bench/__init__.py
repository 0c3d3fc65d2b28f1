"""Benchmarks: `make bench` (or `python -m bench`). Each prints its figures and baselines."""
