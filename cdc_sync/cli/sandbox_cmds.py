"""`cdc-sync sandbox`: run the local Metrilo stand-in (filled in by the sandbox work)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
