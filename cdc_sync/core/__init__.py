"""The pure core: mapping rows to Metrilo records, validating, diffing (no I/O)."""
