"""cdc-sync: keep a Metrilo project in step with a shop's own SQL database."""

__version__ = "0.1.0"
