"""Benchmarks: scripts that print one JSON object of figures."""
