"""Benchmarks: `python -m benchmarks.<name>`; numbers in RESULTS.md, JSON in results/."""
