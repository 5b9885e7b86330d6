"""`python -m cdc_sync` runs the CLI."""

from cdc_sync.cli import main

main()
