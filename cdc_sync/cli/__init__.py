"""The `cdc-sync` command: thin wiring from flags to the library; the only code that prints.

Each group of commands lives in its own module and is registered here. Library errors
(`CdcSyncError`) become a message on stderr and the error's exit code, never a traceback.
"""

from __future__ import annotations

import sys

import click

from cdc_sync import __version__
from cdc_sync.cli import (
    daemon_cmds,
    db_cmds,
    demo_cmds,
    init_cmds,
    mapping_cmds,
    sandbox_cmds,
    sync_cmds,
)
from cdc_sync.cli.common import EXIT_HELP, run_guarded


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog=EXIT_HELP)
@click.version_option(__version__, prog_name="cdc-sync")
def cli() -> None:
    """Keep a Metrilo project in step with a shop's own SQL database, read-only.

    Settings come from flags, the environment and a .env file (see README.md for every
    setting). The API secret is read only from METRILO_API_SECRET or METRILO_API_SECRET_FILE.
    """


for _module in (demo_cmds, init_cmds, mapping_cmds, sync_cmds, daemon_cmds, sandbox_cmds, db_cmds):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    sys.exit(run_guarded(cli))
