"""Benchmark scripts of the harness (run them directly: python bench/<script>.py)."""
