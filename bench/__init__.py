"""Benchmarks of cdc-sync at shop scale: scripts that print figures (see bench/README.md)."""
