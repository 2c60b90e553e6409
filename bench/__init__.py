"""Benchmarks: measured speed and quality figures for docs/benchmarks.md (run as `python bench/NAME.py`)."""
