"""Reproducible benchmarks; each script appends its figures to benchmarks/RESULTS.md."""
