"""`cdc-sync check` and `cdc-sync preview` (filled in by the mapping work)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
